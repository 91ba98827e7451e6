package tokensvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/rewind-broker/rewind/tokensvc"
)

// The broker asks a vendor's token service for a push credential before it
// wakes a terminal. (The test server's client routes *.example.com to it.)
func ExampleClient() {
	vendor := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(tokensvc.Credential{Type: tokensvc.TypeFCM, Project: "mydmrapp-jaso42", Token: "ya29.example", Expires: 3600})
	}))
	defer vendor.Close()

	c, err := tokensvc.NewClient(tokensvc.ClientConfig{
		Policy:     tokensvc.URLPolicy{AllowedHosts: []string{"tokens.example.com"}},
		HTTPClient: vendor.Client(),
		BearerKeys: map[string]string{"tokens.example.com": "broker-key"},
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	url := "https://tokens.example.com/token/mydmrapp?code=secret"
	cred, err := c.Get(context.Background(), url)
	var backoff *tokensvc.BackoffError
	switch {
	case errors.As(err, &backoff):
		fmt.Println("keep the message stored; retry at", backoff.Until)
	case err != nil:
		fmt.Println("cannot wake:", err)
	default:
		fmt.Println(cred.Type, cred.Project, cred.Token)
		fmt.Println("log as", tokensvc.Redact(url))
		// If FCM answers 401 for cred.Token: c.Invalidate(url, cred.Token),
		// then Get again and retry the push once.
	}
	// Output:
	// FCM HTTP v1 mydmrapp-jaso42 ya29.example
	// log as https://tokens.example.com/token/mydmrapp
}
