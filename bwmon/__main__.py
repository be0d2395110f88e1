from bwmon.cli import main

raise SystemExit(main())
