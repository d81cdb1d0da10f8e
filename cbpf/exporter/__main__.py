"""python -m cbpf.exporter CONFIG [--listen ADDR:PORT]: the same as `cbpf export`."""

import sys

from cbpf.exporter import main

sys.exit(main(sys.argv[1:]))
