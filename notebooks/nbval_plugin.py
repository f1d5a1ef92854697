"""A pytest plugin for the notebook tests (`pytest -p nbval_plugin --nbval ...`): two changes to how
nbval runs and compares cells, so that a re-run matches what `notebooks/build.py --execute` stored.

1. Cells run with history, as Jupyter and nbclient run them. nbval sends every cell with
   store_history=False; IPython then cannot see a cell's trailing semicolon (it looks for it in the
   input history), so `viz.image_grid(...);` would show the returned figure once more.
2. stderr is not compared. What lands there is the machine's, not the notebook's: library notices
   that depend on the CPU (bitsandbytes' kernels) or on the environment (libgomp's complaint about
   OMP_NUM_THREADS). A cell that raises still fails, and stdout, results and figures are compared.
"""

from nbval.kernel import RunningKernel
from nbval.plugin import IPyNbFile


def execute_cell_input(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


RunningKernel.execute_cell_input = execute_cell_input
_nbval_init = IPyNbFile.__init__


def _init_without_stderr(self, *args, **kwargs):
    _nbval_init(self, *args, **kwargs)
    self.skip_compare = (*self.skip_compare, "stderr")


IPyNbFile.__init__ = _init_without_stderr
