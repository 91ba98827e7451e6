//go:build race

package broker

// raceEnabled: the race detector is on. sync.Pool then drops a quarter of what is put back on
// purpose, so allocation counts of pooled paths are not meaningful.
const raceEnabled = true
