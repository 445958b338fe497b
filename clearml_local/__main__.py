import sys

from clearml_local.cli import main

sys.exit(main())
