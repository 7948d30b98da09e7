import sys

from tpr_vo.cli import main

sys.exit(main())
