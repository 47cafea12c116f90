import sys

from edge_ocr.cli import main

sys.exit(main())
