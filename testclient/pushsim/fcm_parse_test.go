package pushsim

import (
	"reflect"
	"testing"
)

// fcmParseSeeds are messages:send bodies of every shape the fast path must either decode exactly
// as parseFCMFull does or leave to it.
var fcmParseSeeds = []string{
	// what the firebase SDK sends for the broker
	`{"message":{"data":{"body":"AAEC","enc":"aes128gcm","type":"data"},"android":{"ttl":"3600s","collapse_key":"rewind-262000101","priority":"high"},"token":"dev:APA91b"}}`,
	`{"message":{"data":{"type":"wake"},"android":{"ttl":"0s","priority":"normal"},"token":"t"}}`,
	`{"message":{"token":"t"}}`,
	`{"message":{"token":"t","data":{}},"validate_only":true}`,
	`{"validate_only":false,"message":{"token":"t","android":{"priority":"HIGH","ttl":"1.5s"}}}`,
	`{"message":{"token":"t","notification":{"title":"x"},"android":{"restricted_package_name":"a.b","direct_boot_ok":true}}}`,
	`{"message":{"token":"t","android":{"ttl":"86400.000000001s"}}}`,
	`{"message":{"token":"t","data":{"k":"\u00e9\ud83d\ude00\"\\"}}}`,
	`{"message":{"token":"t","token":"u"}}`,
	// left to the full parser: accepted there
	`{"message":{"token":"t","android":{"collapseKey":"c"}}}`,
	`{"validateOnly":true,"message":{"token":"t"}}`,
	`{"message":{"token":"t","data":null,"android":null}}`,
	`{"message":{"token":"t","android":{"priority":null,"ttl":null,"collapse_key":null}}}`,
	`{"message":{"token":"t","notification":{"n":1e400}}}`,
	// refused
	`{"message":{"token":"t","Token":"u"}}`,
	`{"message":{"token":"t","topic":"x"}}`,
	`{"message":{"token":"t","condition":"x"}}`,
	`{"message":{"token":""}}`,
	`{"message":{"token":null}}`,
	`{"message":{"token":1}}`,
	`{"message":{}}`,
	`{"message":null}`,
	`{}`,
	`[]`,
	`{"message":{"token":"t"},"extra":1}`,
	`{"message":{"token":"t","data":{"k":1}}}`,
	`{"message":{"token":"t","data":{"k":null}}}`,
	`{"message":{"token":"t","data":{"from":"x"}}}`,
	`{"message":{"token":"t","data":{"google.x":"x"}}}`,
	`{"message":{"token":"t","data":[]}}`,
	`{"message":{"token":"t","android":{"priority":"urgent"}}}`,
	`{"message":{"token":"t","android":{"priority":1}}}`,
	`{"message":{"token":"t","android":{"ttl":"-1s"}}}`,
	`{"message":{"token":"t","android":{"ttl":"315576000000s"}}}`,
	`{"message":{"token":"t","android":{"ttl":"1m"}}}`,
	`{"message":{"token":"t","android":{"ttl":3}}}`,
	`{"message":{"token":"t","android":{"colour":"red"}}}`,
	`{"message":{"token":"t","android":"high"}}`,
	`{"message":{"token":"t"},"validate_only":"yes"}`,
	`{"message":{"token":"t"}`,
	``,
}

// FuzzParseFCMFast: whatever the fast path accepts, the full parser accepts with the same result.
func FuzzParseFCMFast(f *testing.F) {
	for _, s := range fcmParseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := parseFCMFast(body)
		if !ok {
			return
		}
		full, ans := parseFCMFull(body)
		if ans != nil {
			t.Fatalf("%s: fast path accepts, full parser answers %d %s", body, ans.status, ans.message)
		}
		if !reflect.DeepEqual(fast, full) {
			t.Fatalf("%s:\nfast %+v\nfull %+v", body, fast, full)
		}
	})
}

// TestParseFCMFastTaken: the bodies senders send take the fast path.
func TestParseFCMFastTaken(t *testing.T) {
	for _, s := range fcmParseSeeds[:9] {
		if _, ok := parseFCMFast([]byte(s)); !ok {
			t.Errorf("fast path refuses %s", s)
		}
	}
}

func BenchmarkParseFCM(b *testing.B) {
	body := []byte(`{"message":{"data":{"body":"` + string(make([]byte, 0)) + `AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","enc":"aes128gcm","type":"data"},"android":{"ttl":"3600s","collapse_key":"rewind-262000101","priority":"high"},"token":"dev:APA91bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	for _, p := range []struct {
		name  string
		parse func([]byte) (fcmMessage, *fcmAnswer)
	}{{"fast", parseFCM}, {"full", parseFCMFull}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ans := p.parse(body); ans != nil {
					b.Fatal(ans.message)
				}
			}
		})
	}
}
