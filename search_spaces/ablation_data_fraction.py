"""Training-data fraction (RcAE paper, Table 5): 10/25/50/75/100 % of the train normals, for RcAE and
the ConvAE baseline.
"""

GRID = {
    "data.data_fraction": [0.1, 0.25, 0.5, 0.75, 1.0],
    "model.method": ["rcae", "convae"],
}
