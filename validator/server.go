package validator

import "github.com/valyala/fasthttp"

// NewServer returns the fasthttp.Server for the validation API: v's
// Handler, ErrorHandler and logger, and the limits and settings the API
// depends on. The caller serves it on its listener (cmd/playerguard wraps
// that listener for the drain and lingering closes).
func (v *Validator) NewServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            v.Handler,
		ErrorHandler:       v.ErrorHandler,
		Logger:             v.FasthttpLogger(),
		Name:               "playerguard",
		MaxRequestBodySize: MaxBodyLen,
		// Also the request header limit: room for an 8 KiB idToken header
		// (Kakao's are about 1 KiB; a longer one must still get the 400
		// naming it, not a 431) and the rest. Each open connection holds
		// one, so a reconnect storm of 10,000 connections costs 120 MiB,
		// not 160.
		ReadBufferSize: 12 << 10,
		// fasthttp's error texts otherwise quote the request they could
		// not parse, access token header included (logged at debug).
		SecureErrorLogMessage: true,
		// No ReadTimeout, WriteTimeout or IdleTimeout: each costs fasthttp
		// a deadline update per request (two for the first two), measured
		// at 10-25% of cache-hit throughput on 2 cores, and callers are
		// local game servers. A drain ends connections itself.
		CloseOnShutdown:              true,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
	}
}
