package testclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Admin is the part of the broker's admin API the load scenario needs: creating terminals.
type Admin struct {
	// URL is the admin API's base, e.g. http://127.0.0.1:4001.
	URL string
	// Key is the admin bearer key.
	Key string
	// HTTPClient is used for the calls; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// maxAdminBody bounds how much of an admin error response is read into an error message.
const maxAdminBody = 4 << 10

// PutTerminal creates or updates terminal id: PUT {URL}/v1/terminals/{id} with JSON
// {"password": ..., "name": ...}. Any 2xx answer is success.
func (a Admin) PutTerminal(ctx context.Context, id uint32, password, name string) error {
	body, err := json.Marshal(struct {
		Password string `json:"password"`
		Name     string `json:"name,omitempty"`
	}{password, name})
	if err != nil {
		return err
	}
	url := fmt.Sprintf("%s/v1/terminals/%d", strings.TrimRight(a.URL, "/"), id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.Key)
	hc := a.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("testclient: create terminal %d: %w", id, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if resp.StatusCode/100 != 2 {
		return &AdminError{Status: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	}
	return nil
}

// AdminError is a non-2xx answer of the admin API.
type AdminError struct {
	Status int
	Body   string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("testclient: admin API answered %d: %s", e.Status, e.Body)
}
