package tokensvc

import "fmt"

// A terminal app that attaches to the broker bm.example.net puts this code
// into its token-service URL:
// https://tokens.example.com/token/mydmrapp?broker=bm.example.net&code=2da5e1….
func ExampleVerificationCode() {
	fmt.Println(VerificationCode([]byte("example-app-secret-2024"), "bm.example.net"))
	// Output: 2da5e198514d33ffb70ce6c9af9b5f87565cab96cd0f94b8a2ceb1b018e446fb
}
