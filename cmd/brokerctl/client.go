package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// maxResponse bounds an admin API answer read into memory: a full page (broker.MaxPageSize
// sessions with their talkgroups) is well under 1 MiB.
const maxResponse = 8 << 20

// errUnreachable marks every failure to get an HTTP answer from the broker: refused
// connection, DNS, TLS, or no answer within --timeout. It maps to exit status 3.
var errUnreachable = errors.New("cannot reach the broker")

// apiError is an answer of the admin API outside 2xx. Message is the API's "error" field, or
// a short description of the body when it is not the API's JSON (a proxy's error page).
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	if e.Status == http.StatusUnauthorized {
		return "authentication refused: " + e.Message
	}
	return e.Message
}

// client calls the admin API. It is used for one command and then discarded.
type client struct {
	base    *url.URL
	key     string
	timeout time.Duration // for each request
	hc      *http.Client
}

// do sends one request and returns the status and body of a 2xx answer. body, when not nil,
// is sent as JSON, or as it is when it is a rawBody. Any other status is an *apiError; a transport failure wraps errUnreachable.
// Errors never contain the request body (it may hold a password).
func (c *client) do(ctx context.Context, method string, path []string, query url.Values, body any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base.JoinPath(path...)
	u.RawQuery = query.Encode()
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, contentType = bytes.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "brokerctl")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, c.unreachable(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return 0, nil, c.unreachable(fmt.Errorf("reading the answer to %s %s: %w", method, u.Path, err))
	}
	if len(data) > maxResponse {
		return 0, nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, u.Path, maxResponse)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, data, &apiError{Status: resp.StatusCode, Message: errorMessage(resp, data)}
	}
	return resp.StatusCode, data, nil
}

// rawBody is a request body sent as it is, not as JSON.
type rawBody struct {
	contentType string
	data        []byte
}

// unreachable wraps a transport error, saying plainly when it was the timeout.
func (c *client) unreachable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s: no answer within %s (see --timeout)", errUnreachable, c.base.Redacted(), c.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is said once, below
	}
	return fmt.Errorf("%w at %s: %w", errUnreachable, c.base.Redacted(), err)
}

// errorMessage extracts the admin API's {"error": "..."} or describes a foreign body.
func errorMessage(resp *http.Response, data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	msg := resp.Status
	if first, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n"); first != "" && utf8.ValidString(first) {
		msg += ": " + clean(first, 200)
	}
	return msg
}

// getJSON GETs path and decodes the answer into v; it also returns the raw answer.
func (c *client) getJSON(ctx context.Context, path []string, query url.Values, v any) ([]byte, error) {
	_, data, err := c.do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("GET /%s: unexpected answer: %w", strings.Join(path, "/"), err)
	}
	return data, nil
}

// page is one page of a list endpoint, items kept as the API wrote them.
type page struct {
	Items []json.RawMessage `json:"items"`
	Next  *uint32           `json:"next,omitempty"`
}

// list reads a list endpoint from after on, limit items per page (0: the API's default).
// With all it follows "next" to the end and returns every item with next nil; otherwise it
// returns one page.
func (c *client) list(ctx context.Context, path []string, after uint32, limit int, all bool, filters url.Values) (page, error) {
	var out page
	out.Items = []json.RawMessage{}
	for {
		q := url.Values{}
		for k, vs := range filters {
			q[k] = vs
		}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		if after > 0 {
			q.Set("after", fmt.Sprint(after))
		}
		var p page
		if _, err := c.getJSON(ctx, path, q, &p); err != nil {
			return page{}, err
		}
		out.Items = append(out.Items, p.Items...)
		out.Next = p.Next
		if !all || p.Next == nil {
			return out, nil
		}
		if *p.Next <= after {
			return page{}, fmt.Errorf("GET /%s: next page %d does not advance past %d", strings.Join(path, "/"), *p.Next, after)
		}
		after = *p.Next
	}
}
