"""python -m supervisor: the same as the docker-supervisor command."""

import sys

from .cli.main import main

sys.exit(main())
