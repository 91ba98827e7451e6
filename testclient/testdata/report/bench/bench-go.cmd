# commit 1e71a18, 2026-11-24T21:00:00Z
go test -run '^$' -bench . -benchmem -count 1 ./protocol ./registry ./broker
