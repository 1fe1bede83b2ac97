package validator

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// The checks of Config.Upstream and Config.UpstreamCAFile, in one place:
// New refuses exactly what they refuse, and playerguard -check-config runs
// them, so that a configuration the check passes also starts. Their errors
// name the problem but not the setting; the caller says which setting it
// checked (New's Config field, or a flag).

// CheckUpstream reports everything New would refuse in rawURL as
// Config.Upstream and caFile as Config.UpstreamCAFile: nil, or one error
// per setting, joined, each starting with "upstream URL: " or
// "upstream CA file: ".
func CheckUpstream(rawURL, caFile string) error {
	var errs []error
	if err := CheckUpstreamURL(rawURL); err != nil {
		errs = append(errs, fmt.Errorf("upstream URL: %w", err))
	}
	if err := CheckUpstreamCAFile(caFile); err != nil {
		errs = append(errs, fmt.Errorf("upstream CA file: %w", err))
	}
	return errors.Join(errs...)
}

// CheckUpstreamURL reports why rawURL is not an upstream base URL New
// accepts: it must parse, have the scheme http or https and a host, and
// carry no user info, query or fragment (scheme://host[:port][/path]).
func CheckUpstreamURL(rawURL string) error {
	_, err := parseUpstreamURL(rawURL)
	return err
}

// CheckUpstreamCAFile reports why path is not a CA file New accepts: it
// must be readable and hold at least one PEM certificate. The empty path
// means the system's CAs, and is fine. A file is checked whatever the
// upstream's scheme: one given with an http:// upstream is unused, but a
// broken one would break the day the upstream turns https://.
func CheckUpstreamCAFile(path string) error {
	if path == "" {
		return nil
	}
	_, err := readCAFile(path)
	return err
}

// parseUpstreamURL is the one parse of an upstream base URL. Its errors
// never echo a password: a URL with user info is shown redacted, and a URL
// that does not parse is not shown at all.
func parseUpstreamURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, fmt.Errorf("cannot parse: %w", err)
	}
	shown := rawURL
	if u.User != nil {
		shown = u.Redacted()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", shown)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", shown)
	case u.User != nil:
		return nil, fmt.Errorf("%q has user info; want scheme://host[:port][/path] (the upstream is authenticated with the app secret and admin key)", shown)
	case u.RawQuery != "":
		return nil, fmt.Errorf("%q has a query; want scheme://host[:port][/path]", shown)
	case u.Fragment != "":
		return nil, fmt.Errorf("%q has a fragment; want scheme://host[:port][/path]", shown)
	}
	return u, nil
}

// readCAFile is the one load of an upstream CA file.
func readCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// CheckCredential reports why s cannot be an app secret, an admin key or
// an app id: it must be visible ASCII (0x21-0x7E), as it travels in a
// header and is looked for, exactly as sent, in upstream answers and log
// lines. The error never shows s.
func CheckCredential(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return fmt.Errorf("contains a space, a control character or a non-ASCII byte (at byte %d)", i)
		}
	}
	return nil
}
