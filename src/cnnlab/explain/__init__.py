"""Learn mode: the lecture's formulas worked through with real numbers.

Each function returns the text that ``cnnlab explain ...`` prints, computed by the same
layers that train real models (and checked against them).
"""
