# commit 77a8179, 2026-11-24T20:00:00Z
bin/testclient load --terminals 12000 --idle-share 0.83334 --wake-cycles 5000 --json
