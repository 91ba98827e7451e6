package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// Sending a wake-up through FCM (here a fake one) and acting on the answer, as the wake path
// does: refetch the credential once on ErrProviderAuth, mark the attach invalid on
// ErrUnregistered.
func ExampleFCMSender() {
	sim := pushsim.NewFCM()
	defer sim.Close()
	sender, err := NewFCMSender(FCMConfig{
		Endpoint:  sim.URL() + "/v1", // default: https://fcm.googleapis.com/v1
		Transport: sim.Client().Transport,
		Timeout:   5 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer sender.CloseIdleConnections()

	device := sim.RegisterDevice("my-app") // from the terminal's TERMINAL_ATTACH
	cred := tokensvc.Credential{Type: tokensvc.TypeFCM, Project: "my-app", Token: sim.Issue("my-app")}
	req := PushRequest{
		Platform:    PlatformFCM,
		DeviceToken: device,
		Credential:  cred, // from the vendor's token service
		Kind:        PushKindWake,
		TTL:         time.Hour,
		CollapseID:  "rewind-262000101",
	}
	res, err := sender.Send(context.Background(), req)
	fmt.Println(res.Status, err)

	sim.Revoke(cred.Token)
	_, err = sender.Send(context.Background(), req)
	fmt.Println(errors.Is(err, ErrProviderAuth))

	sim.Unregister(device)
	req.Credential.Token = sim.Issue("my-app") // refetched
	_, err = sender.Send(context.Background(), req)
	fmt.Println(errors.Is(err, ErrUnregistered))
	// Output:
	// 200 <nil>
	// true
	// true
}
