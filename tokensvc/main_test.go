package tokensvc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a mint
// in flight, a server left running or a transport's idle connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
