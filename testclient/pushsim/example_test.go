package pushsim_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// A simulated phone that is woken by an FCM push.
func Example() {
	sim := pushsim.New()
	defer sim.Close()

	device := sim.RegisterDevice(pushsim.PlatformFCM, "proj-a") // what the terminal attaches
	woken := make(chan string, 1)
	sim.OnPush(device, func(p pushsim.Push) {
		woken <- p.Data["type"] // a real handler would reconnect the terminal here
	})

	// What the broker's FCM sender does, with a token from the vendor's token service.
	body := fmt.Sprintf(`{"message":{"token":%q,"data":{"type":"wake","enc":"none"},"android":{"priority":"high","ttl":"60s"}}}`, device)
	req, _ := http.NewRequest(http.MethodPost, sim.FCM.URL()+"/v1/projects/proj-a/messages:send", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+sim.FCM.Issue("proj-a"))
	resp, err := sim.FCM.Client().Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Proto, resp.Status)
	fmt.Println("woken by", <-woken)

	// Once the app is gone, FCM says so.
	sim.Unregister(device)
	req, _ = http.NewRequest(http.MethodPost, sim.FCM.URL()+"/v1/projects/proj-a/messages:send", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+sim.FCM.Issue("proj-a"))
	resp, _ = sim.FCM.Client().Do(req)
	resp.Body.Close()
	fmt.Println(resp.Status)

	p, _ := sim.Next(context.Background())
	fmt.Println(len(sim.Pushes()), p.Priority, p.TTL)
	// Output:
	// HTTP/2.0 200 OK
	// woken by wake
	// 404 Not Found
	// 1 high 1m0s
}
