# commit 1e71a18, 2026-11-24T21:00:00Z
bin/broker --data $(mktemp -d) --dev
bin/testclient load --terminals 2000 --idle-share 0.5 --wake-cycles 500 --json
