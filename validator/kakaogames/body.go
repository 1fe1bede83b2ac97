package kakaogames

import "playerguard/validator"

// kakaoBody is what Decide reads of an upstream response body: where the
// fields the game server is handed sit in the body, and the values the
// decision depends on.
type kakaoBody struct {
	player, lockout, token, redirectURI span

	desc    string // desc, unescaped
	hasDesc bool

	playerID    string // player.playerId (a number as its literal text)
	hasPlayerID bool
	status      string // player.status
	hasStatus   bool

	lockoutIDType string // lockout.idType
	lockoutID     string // lockout.id
	hasLockoutID  bool
}

// span is a value's place in the body; end 0 is absent.
type span struct{ off, end int }

// The keys Decide reads, per object, by position.
var (
	topKeys     = []string{"player", "desc", "lockout", "token", "redirectUri"}
	playerKeys  = []string{"playerId", "status"}
	lockoutKeys = []string{"idType", "id"}
)

const (
	topPlayer = iota
	topDesc
	topLockout
	topToken
	topRedirectURI
)

// parseBody reads body as the strict JSON object Decide needs, or refuses
// it (validator.JSONReader's rules: what two parsers could read two ways
// is unreadable, because the game server reads the same bytes playerguard
// decides on; it is handed the player object, or in drop-in mode the
// whole body). Decision fields of the wrong type are refused too: a desc,
// status or idType that is not a string, a playerId or id that is neither
// a string nor a number. null is an absent field.
func parseBody(body []byte) (kakaoBody, bool) {
	var kb kakaoBody
	d, ok := validator.NewJSONReader(body)
	if !ok {
		return kb, false
	}
	raw := func(s *span, obj func() error) error {
		off, end, err := d.Raw(2, obj)
		*s = span{off, end}
		return err
	}
	err := d.Object(1, topKeys, func(k int) error {
		switch k {
		case topPlayer:
			return raw(&kb.player, func() error { return playerObject(d, &kb) })
		case topLockout:
			return raw(&kb.lockout, func() error { return lockoutObject(d, &kb) })
		case topToken:
			return raw(&kb.token, nil)
		case topRedirectURI:
			return raw(&kb.redirectURI, nil)
		default: // topDesc
			s, ok, err := d.String()
			kb.desc, kb.hasDesc = s, ok
			return err
		}
	})
	if err != nil || !d.End() {
		return kakaoBody{}, false
	}
	return kb, true
}

func playerObject(d *validator.JSONReader, kb *kakaoBody) error {
	return d.Object(2, playerKeys, func(k int) error {
		var err error
		if k == 0 {
			kb.playerID, kb.hasPlayerID, err = d.ID()
		} else {
			kb.status, kb.hasStatus, err = d.String()
		}
		return err
	})
}

func lockoutObject(d *validator.JSONReader, kb *kakaoBody) error {
	return d.Object(2, lockoutKeys, func(k int) error {
		var err error
		if k == 0 {
			kb.lockoutIDType, _, err = d.String()
		} else {
			kb.lockoutID, kb.hasLockoutID, err = d.ID()
		}
		return err
	})
}
