import sys

from styleclip_toolkit.cli import main

sys.exit(main())
