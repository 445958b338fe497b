import sys

from serving_local.cli import main

sys.exit(main())
