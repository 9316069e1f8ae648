"""Known-wrong implementations of each exercise, one module per notebook; the checkers must reject them all."""
