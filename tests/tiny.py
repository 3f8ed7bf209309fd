"""The smallest model the end-to-end tests train: one layer of width 16 on 16-token rows, 8 rows a
step; each test file adds the budget and the engine settings it needs."""

TINY_MODEL = [
    "model.size=null",
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.ctx=16",
    "train.batch_size=8",
]
