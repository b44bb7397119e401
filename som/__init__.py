"""somcal's science library: a numba self-organizing map and the photo-z calibration
around it (Masters et al. 2015). No web framework, no database: usable from a notebook.
"""

from .estimator import SOM, Assignment, MapFormatError, SOMError
from .grid import Grid

__all__ = ["SOM", "Assignment", "Grid", "MapFormatError", "SOMError"]
__version__ = "0.1.0"
