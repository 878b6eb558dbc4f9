"""`python -m auxrnn.models` prints the parameter table of docs/baselines.md."""
from auxrnn.models.table import parameter_table

print(parameter_table())
