// Command loadgen loads a LiveKit server the way `aula load-test` loads an Aula server: many
// participants from one process, spread over rooms, some publishing H.264 simulcast video
// (the same layers Aula publishes) and Opus audio from pre-encoded clips, the others only
// receiving. It counts what every receiver got and prints a JSON summary: forwarded packets
// and bytes, received picture rates and starved receivers.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// Config is the command line, named as `aula load-test` names its flags.
type Config struct {
	URL                 string
	APIKey              string
	APISecret           string
	Rooms               int
	RoomPrefix          string
	ParticipantsPerRoom int
	PublishersPerRoom   int
	Width, Height       int
	FPS                 int
	JoinRate            float64
	Duration            float64
	StatsJSON           string
	MediaDir            string
}

func parseFlags(args []string) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", os.Getenv("LIVEKIT_URL"), "server URL, e.g. ws://127.0.0.1:7880")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("LIVEKIT_API_KEY"), "API key the tokens are minted with")
	fs.StringVar(&cfg.APISecret, "api-secret", os.Getenv("LIVEKIT_API_SECRET"), "API secret the tokens are signed with")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "rooms to spread the participants over (PREFIX-1 ... PREFIX-N)")
	fs.StringVar(&cfg.RoomPrefix, "room-prefix", "load", "prefix of the rooms' names")
	fs.IntVar(&cfg.ParticipantsPerRoom, "participants-per-room", 4, "participants in each room")
	fs.IntVar(&cfg.PublishersPerRoom, "publishers-per-room", 1, "participants in each room who publish video and audio")
	resolution := fs.String("resolution", "640x360", "video resolution WIDTHxHEIGHT of each publisher")
	fs.IntVar(&cfg.FPS, "fps", 15, "video frame rate")
	fs.Float64Var(&cfg.JoinRate, "join-rate", 10, "participants joining per second")
	fs.Float64Var(&cfg.Duration, "duration", 30, "seconds measured once everyone has joined (after 2 s settling)")
	fs.StringVar(&cfg.StatsJSON, "stats-json", "", "also write the summary as JSON to this file")
	fs.StringVar(&cfg.MediaDir, "media-dir", ".cache/loadgen-media", "where the pre-encoded clips are kept (made with ffmpeg when missing)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if cfg.Width, cfg.Height, err = parseResolution(*resolution); err != nil {
		return nil, err
	}
	switch {
	case cfg.URL == "" || cfg.APIKey == "" || cfg.APISecret == "":
		return nil, errors.New("--url, --api-key and --api-secret are required")
	case cfg.Rooms < 1 || cfg.ParticipantsPerRoom < 1:
		return nil, errors.New("--rooms and --participants-per-room must be at least 1")
	case cfg.PublishersPerRoom < 0 || cfg.PublishersPerRoom > cfg.ParticipantsPerRoom:
		return nil, errors.New("--publishers-per-room must be between 0 and --participants-per-room")
	case cfg.FPS < 1 || cfg.FPS > 120:
		return nil, errors.New("--fps must be between 1 and 120")
	case !(cfg.JoinRate > 0):
		return nil, errors.New("--join-rate must be positive")
	case !(cfg.Duration > 0):
		return nil, errors.New("--duration must be positive")
	}
	return cfg, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		return err
	}
	quiet, err := protoLogger.NewZapLogger(&protoLogger.Config{Level: "error"})
	if err != nil {
		return err
	}
	lksdk.SetLogger(quiet)

	m, err := prepareMedia(cfg)
	if err != nil {
		return err
	}
	participants, failed, firstError := joinAll(cfg, m)
	total := cfg.Rooms * cfg.ParticipantsPerRoom
	var report Report
	if len(participants) == 0 {
		report = summarize(cfg, m, nil, nil, nil, failed, firstError, 0)
	} else {
		fmt.Fprintf(os.Stderr, "%d of %d participants joined; measuring for %.0f s\n", len(participants), total, cfg.Duration)
		time.Sleep(2 * time.Second)
		from := snapshots(participants)
		start := time.Now()
		deadline := start.Add(time.Duration(cfg.Duration * float64(time.Second)))
		last := from
		for time.Now().Before(deadline) {
			time.Sleep(min(time.Until(deadline), time.Second))
			now := snapshots(participants)
			var frames uint64
			for i := range now {
				frames += now[i].minus(last[i]).VideoFrames
			}
			fmt.Fprintf(os.Stderr, "t=%4.0fs  %d in rooms, %d frames received in the last second\n",
				time.Since(start).Seconds(), len(participants), frames)
			last = now
		}
		to := snapshots(participants)
		report = summarize(cfg, m, participants, from, to, failed, firstError, time.Since(start).Seconds())
		for _, p := range participants {
			p.leave()
		}
	}
	report.print()
	if cfg.StatsJSON != "" {
		data, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.StatsJSON, data, 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", cfg.StatsJSON, err)
		}
	}
	if report.Failed > 0 {
		return fmt.Errorf("%d of %d participants could not join: %s", report.Failed, report.Participants, report.FirstError)
	}
	if report.StarvedReceivers > 0 {
		return fmt.Errorf("%d receivers received no video in the measured window", report.StarvedReceivers)
	}
	return nil
}

func prepareMedia(cfg *Config) (*Media, error) {
	layers := simulcastLayers(cfg.Width, cfg.Height, defaultBitrateBps(cfg.Width, cfg.Height, cfg.FPS))
	m := &Media{FPS: cfg.FPS}
	for _, layer := range layers {
		clip, err := prepareVideo(cfg.MediaDir, layer, cfg.FPS)
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, clip)
	}
	audio, err := prepareAudio(cfg.MediaDir)
	if err != nil {
		return nil, err
	}
	m.Audio = audio
	return m, nil
}

// joinAll joins everyone at the join rate, room by room in turn (seat 0 of every room first),
// as `aula load-test` does.
func joinAll(cfg *Config, m *Media) ([]*Participant, int, string) {
	total := cfg.Rooms * cfg.ParticipantsPerRoom
	pace := time.Duration(float64(time.Second) / cfg.JoinRate)
	type outcome struct {
		p   *Participant
		err error
	}
	results := make([]chan outcome, total)
	for index := 0; index < total; index++ {
		roomIndex, seat := index%cfg.Rooms, index/cfg.Rooms
		results[index] = make(chan outcome, 1)
		go func(done chan outcome) {
			p, err := joinParticipant(cfg, m, roomIndex, seat, seat < cfg.PublishersPerRoom)
			done <- outcome{p, err}
		}(results[index])
		time.Sleep(pace)
	}
	var joined []*Participant
	failed, firstError := 0, ""
	for _, result := range results {
		o := <-result
		if o.err != nil {
			failed++
			if firstError == "" {
				firstError = o.err.Error()
			}
			continue
		}
		joined = append(joined, o.p)
	}
	return joined, failed, firstError
}

func snapshots(participants []*Participant) []Snapshot {
	out := make([]Snapshot, len(participants))
	for i, p := range participants {
		out[i] = p.Received.snapshot()
	}
	return out
}

// Percentiles of a sample, in its unit.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

func percentilesOf(values []float64) Percentiles {
	if len(values) == 0 {
		return Percentiles{}
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	at := func(q float64) float64 { return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)] }
	return Percentiles{P50: at(0.5), P95: at(0.95), Max: sorted[len(sorted)-1]}
}
