package jwtauth

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// checkClaims decodes a verified payload and applies, in this order: exp
// (required), nbf, iat, iss, sub, token_use, then aud or client_id. The
// first failing check decides the reason.
func (v *Verifier) checkClaims(payload []byte, wantUse string) (*Claims, error) {
	var all map[string]any
	if err := json.Unmarshal(payload, &all); err != nil || all == nil {
		return nil, reject(ReasonMalformed, "payload is not a JSON object")
	}
	now := v.now()

	exp, ok, err := numericDate(all, "exp")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, reject(ReasonMissingClaim, "exp is required")
	case !now.Before(exp.Add(v.leeway)):
		return nil, reject(ReasonExpired, "token has expired")
	}
	for _, name := range [...]string{"nbf", "iat"} {
		t, ok, err := numericDate(all, name)
		if err != nil {
			return nil, err
		}
		if ok && now.Add(v.leeway).Before(t) {
			return nil, reject(ReasonNotYetValid, name+" is in the future")
		}
	}

	iss, err := requiredClaim(all, "iss")
	switch {
	case err != nil:
		return nil, err
	case iss != v.issuer:
		return nil, reject(ReasonBadIssuer, "unexpected issuer")
	}
	sub, err := requiredClaim(all, "sub")
	if err != nil {
		return nil, err
	}

	use, err := requiredClaim(all, "token_use")
	switch {
	case err != nil:
		return nil, err
	case use != TokenUseID && use != TokenUseAccess:
		return nil, reject(ReasonBadTokenUse, "token_use is neither id nor access")
	case wantUse != TokenUseAny && use != wantUse:
		return nil, reject(ReasonBadTokenUse, "token_use must be "+wantUse)
	}

	c := &Claims{
		Subject:   sub,
		TokenUse:  use,
		Issuer:    iss,
		ExpiresAt: exp,
		All:       all,
	}
	if use == TokenUseID {
		aud, err := audienceClaim(all)
		if err != nil {
			return nil, err
		}
		if !v.anyAudience && len(aud) == 0 {
			return nil, reject(ReasonMissingClaim, "aud is required")
		}
		if i := slices.IndexFunc(aud, func(a string) bool { return v.anyAudience || v.audiences[a] }); i >= 0 {
			c.ClientID = aud[i]
		}
		if c.ClientID == "" && !v.anyAudience {
			return nil, reject(ReasonBadAudience, "aud does not match")
		}
	} else {
		clientID, err := stringClaim(all, "client_id")
		switch {
		case err != nil:
			return nil, err
		case clientID == "" && !v.anyAudience:
			return nil, reject(ReasonMissingClaim, "client_id is required")
		case !v.anyAudience && !v.audiences[clientID]:
			return nil, reject(ReasonBadAudience, "client_id does not match")
		}
		c.ClientID = clientID
	}

	// Optional claims: a wrong type is ignored rather than fatal, since
	// they are informational.
	first, second := "cognito:username", "username"
	if use == TokenUseAccess {
		first, second = second, first
	}
	c.Username, _ = all[first].(string)
	if c.Username == "" {
		c.Username, _ = all[second].(string)
	}
	c.Email, _ = all["email"].(string)
	switch g := all["cognito:groups"].(type) {
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok && s != "" {
				c.Groups = append(c.Groups, s)
			}
		}
	case string:
		if g != "" {
			c.Groups = []string{g}
		}
	}
	return c, nil
}

// maxNumericDate bounds exp/nbf/iat so the conversion to time.Time is exact.
const maxNumericDate = 1 << 53

// numericDate reads an RFC 7519 NumericDate (seconds since the epoch,
// possibly fractional). A non-number is malformed.
func numericDate(all map[string]any, name string) (time.Time, bool, error) {
	raw, ok := all[name]
	if !ok {
		return time.Time{}, false, nil
	}
	f, ok := raw.(float64)
	if !ok || math.Abs(f) > maxNumericDate {
		return time.Time{}, false, reject(ReasonMalformed, name+" is not a valid NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// stringClaim returns a string claim, "" when absent or null. Any other
// type is malformed.
func stringClaim(all map[string]any, name string) (string, error) {
	switch s := all[name].(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	}
	return "", reject(ReasonMalformed, name+" is not a string")
}

// requiredClaim is stringClaim for a claim that must not be absent or
// empty.
func requiredClaim(all map[string]any, name string) (string, error) {
	s, err := stringClaim(all, name)
	if err == nil && s == "" {
		err = reject(ReasonMissingClaim, name+" is required")
	}
	return s, err
}

// audienceClaim reads "aud": a string or an array of strings (RFC 7519).
func audienceClaim(all map[string]any) ([]string, error) {
	switch a := all["aud"].(type) {
	case nil:
		return nil, nil
	case string:
		if a == "" {
			return nil, nil
		}
		return []string{a}, nil
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, reject(ReasonMalformed, "aud is not a string array")
			}
			if s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, reject(ReasonMalformed, "aud is not a string or string array")
}
