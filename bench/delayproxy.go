package main

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// delayProxy is a reverse proxy on loopback that holds every request for
// a fixed delay, then forwards it to a fake and relays the fake's answer:
// the upstream latency the miss scenario needs, for a fake that answers
// at once and has no delay of its own (iamporttest). Everything that goes
// through it is delayed alike, so playerguard and its no-sidecar peer see
// the same upstream.
type delayProxy struct {
	ln  net.Listener
	srv *fasthttp.Server
	hc  *fasthttp.HostClient
}

// startDelayProxy starts a proxy in front of target (a base URL,
// http://host:port) that waits delay before forwarding each request.
func startDelayProxy(target string, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, hc: &fasthttp.HostClient{
		Addr:                          strings.TrimPrefix(target, "http://"),
		MaxConns:                      1024,
		MaxIdleConnDuration:           10 * time.Second,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
		MaxIdemponentCallAttempts:     1,
	}}
	p.srv = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			time.Sleep(delay)
			ctx.Request.Header.Del("Connection")
			if err := p.hc.DoTimeout(&ctx.Request, &ctx.Response, 10*time.Second); err != nil {
				ctx.Error("delay proxy: "+err.Error(), fasthttp.StatusBadGateway)
				return
			}
			ctx.Response.Header.Del("Connection")
		},
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  10 * time.Second,
		// Longer than the clients' idle timeouts (playerguard's upstream
		// keeps idle connections 30 s and does not retry): a proxy
		// closing first races a client reusing the connection, a 503.
		IdleTimeout: 2 * time.Minute,
	}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's base URL.
func (p *delayProxy) URL() string { return "http://" + p.Addr() }

// Addr is the proxy's host:port.
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy, waiting at most 2 s for requests in flight.
func (p *delayProxy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.srv.ShutdownWithContext(ctx)
	p.hc.CloseIdleConnections()
}
