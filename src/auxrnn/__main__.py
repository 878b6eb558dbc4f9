from auxrnn.cli import main

raise SystemExit(main())
