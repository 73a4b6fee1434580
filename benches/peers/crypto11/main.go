// crypto11 peer for the hsm-custody `sign` bench: HMAC of one message with a secret key found by
// label on the same token, `threads` goroutines for `seconds`, one JSON line on stdout.
//
// Built by benches/peers/setup.sh against Debian's golang-github-thalesignite-crypto11-dev
// (GOPATH mode, no network). The PIN comes from $PEER_PIN, never from argv.
package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesIgnite/crypto11"
	"github.com/miekg/pkcs11"
)

func main() {
	module := flag.String("module", "/usr/lib/softhsm/libsofthsm2.so", "PKCS#11 module")
	token := flag.String("token", "", "token label")
	key := flag.String("key", "", "secret key label")
	alg := flag.String("alg", "sha256", "sha256, sha384 or sha512")
	msgHex := flag.String("msg-hex", "", "message, hex")
	threads := flag.Int("threads", 1, "goroutines")
	seconds := flag.Float64("seconds", 1, "duration")
	flag.Parse()

	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "crypto11 peer: %s: %v\n", what, err)
		os.Exit(1)
	}
	msg, err := hex.DecodeString(*msgHex)
	if err != nil {
		fail("message", err)
	}
	mech := map[string]int{"sha256": pkcs11.CKM_SHA256_HMAC, "sha384": pkcs11.CKM_SHA384_HMAC, "sha512": pkcs11.CKM_SHA512_HMAC}[*alg]
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:       *module,
		TokenLabel: *token,
		Pin:        os.Getenv("PEER_PIN"),
	})
	if err != nil {
		fail("configure", err)
	}
	defer ctx.Close()
	k, err := ctx.FindKey(nil, []byte(*key))
	if err != nil || k == nil {
		fail("find key", err)
	}
	sign := func() error {
		h, err := k.NewHMAC(mech, 0)
		if err != nil {
			return err
		}
		if _, err := h.Write(msg); err != nil {
			return err
		}
		if len(h.Sum(nil)) == 0 {
			return fmt.Errorf("empty MAC")
		}
		return nil
	}
	// Warm up: sessions opened, key cached by the module.
	for i := 0; i < *threads*4; i++ {
		if err := sign(); err != nil {
			fail("sign", err)
		}
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	lat := make([][]int64, *threads)
	errs := make([]error, *threads)
	start := make(chan struct{})
	for t := 0; t < *threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			samples := make([]int64, 0, 1<<16)
			<-start
			for !stop.Load() {
				t0 := time.Now()
				if err := sign(); err != nil {
					errs[t] = err
					return
				}
				samples = append(samples, time.Since(t0).Nanoseconds())
			}
			lat[t] = samples
		}(t)
	}
	t0 := time.Now()
	close(start)
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(t0).Seconds()
	var all []int64
	for t := range lat {
		if errs[t] != nil {
			fail("sign", errs[t])
		}
		all = append(all, lat[t]...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i]) / 1000
	}
	out, _ := json.Marshal(map[string]interface{}{
		"peer":      "crypto11",
		"threads":   *threads,
		"ops":       len(all),
		"secs":      elapsed,
		"ops_per_s": float64(len(all)) / elapsed,
		"p50_us":    pct(0.50),
		"p99_us":    pct(0.99),
		"p999_us":   pct(0.999),
		"max_us":    pct(1.0),
	})
	fmt.Println(string(out))
}
