"""A pytest plugin for the notebook tests (`pytest -p nbval_history --nbval ...`): execute cells
with history, as Jupyter and nbclient do.

nbval sends every cell with store_history=False. IPython then cannot see a cell's trailing
semicolon (it looks for it in the input history), so `viz.image_grid(...);` shows the returned
figure once more, and the outputs differ from those `notebooks/build.py --execute` stored.
"""
from nbval.kernel import RunningKernel


def execute_cell_input(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


RunningKernel.execute_cell_input = execute_cell_input
