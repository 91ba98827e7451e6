package pushsim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Fault is an answer a provider gives instead of handling a request (see FailNext). The body is
// sent as is: it may be the provider's JSON, or a proxy's HTML page that no client can parse.
type Fault struct {
	Status int         // HTTP status; 0 means 500
	Header http.Header // extra response headers, e.g. Retry-After; may be nil
	Body   string      // Content-Type is sniffed from it unless Header sets one
}

// WithHeader returns a copy of f that also sends the header key: value.
func (f Fault) WithHeader(key, value string) Fault {
	h := f.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Add(key, value)
	f.Header = h
	return f
}

// FCMFault is an error in FCM HTTP v1's JSON shape: HTTP status, the google.rpc status name
// ("RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL"…) and, unless errorCode is empty, an FcmError
// detail ("QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "THIRD_PARTY_AUTH_ERROR"…). For example the
// answer the firebase SDK reports as messaging.IsQuotaExceeded:
//
//	pushsim.FCMFault(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.").WithHeader("Retry-After", "1")
func FCMFault(status int, rpcStatus, errorCode, message string) Fault {
	var details []any
	if errorCode != "" {
		details = append(details, fcmErrorDetail(errorCode))
	}
	body, _ := json.Marshal(fcmErrorBody(status, rpcStatus, message, details))
	return Fault{
		Status: status,
		Header: http.Header{"Content-Type": {fcmContentType}},
		Body:   string(body),
	}
}

// APNsFault is an error in APNs' JSON shape ({"reason":…}), e.g. APNsFault(429, "TooManyRequests")
// or APNsFault(503, "ServiceUnavailable").
func APNsFault(status int, reason string) Fault {
	body, _ := json.Marshal(apnsErrorBody{Reason: reason})
	return Fault{
		Status: status,
		Header: http.Header{"Content-Type": {apnsContentType}},
		Body:   string(body),
	}
}

func (f Fault) write(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range f.Header {
		h[k] = append(h[k], vs...)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", http.DetectContentType([]byte(f.Body)))
	}
	h.Set("Content-Length", strconv.Itoa(len(f.Body)))
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(f.Body))
}
