package retention

import (
	"encoding/json"
	"time"
)

// reportJSON is Report with its duration as text ("35ms"), as kiln's
// other reports write it.
type reportJSON struct {
	*plainReport
	Duration string `json:"duration"`
}

type plainReport Report

// MarshalJSON writes the report with its duration as text.
func (r *Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(reportJSON{(*plainReport)(r), r.Duration.String()})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Report) UnmarshalJSON(b []byte) error {
	aux := reportJSON{plainReport: (*plainReport)(r)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Duration == "" {
		return nil
	}
	d, err := time.ParseDuration(aux.Duration)
	r.Duration = d
	return err
}
