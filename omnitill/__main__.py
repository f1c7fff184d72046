from __future__ import annotations

from omnitill.cli import main

if __name__ == "__main__":
    main()
