package notify

import (
	"slices"
	"testing"

	"kiln/config"
)

// config validates filters against its own list: it must name the same types.
func TestConfigKnowsEveryType(t *testing.T) {
	if !slices.Equal(config.EventTypes, Types) {
		t.Errorf("config.EventTypes %v, notify.Types %v", config.EventTypes, Types)
	}
}
