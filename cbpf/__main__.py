"""python -m cbpf: the cbpf command (cbpf.cli). With no arguments, `cbpf top` for 3 seconds."""

import sys

from cbpf.cli import main

if __name__ == "__main__":
    sys.exit(main())
