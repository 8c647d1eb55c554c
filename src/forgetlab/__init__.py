"""forgetlab: make language models forget, and measure whether they did.

Importing the package makes OpenMP's waiting threads sleep instead of spin, before torch loads (see
:mod:`forgetlab.threads`), so that runs stay fast on a machine shared with other busy processes.
"""

from forgetlab.threads import set_threading_environment

set_threading_environment()
