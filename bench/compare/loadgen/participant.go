package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// h264 is what publishers send: constrained baseline, packetization-mode 1, as Aula does.
var h264 = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   90_000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

var opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48_000, Channels: 2}

// Counters is what one participant received, counted as packets arrive.
type Counters struct {
	VideoPackets atomic.Uint64
	VideoBytes   atomic.Uint64 // RTP payload bytes
	VideoFrames  atomic.Uint64 // RTP packets with the marker bit: the last of each picture
	AudioPackets atomic.Uint64
	AudioBytes   atomic.Uint64
}

// Snapshot is Counters read at one moment.
type Snapshot struct {
	VideoPackets, VideoBytes, VideoFrames, AudioPackets, AudioBytes uint64
}

func (c *Counters) snapshot() Snapshot {
	return Snapshot{
		VideoPackets: c.VideoPackets.Load(),
		VideoBytes:   c.VideoBytes.Load(),
		VideoFrames:  c.VideoFrames.Load(),
		AudioPackets: c.AudioPackets.Load(),
		AudioBytes:   c.AudioBytes.Load(),
	}
}

func (s Snapshot) minus(o Snapshot) Snapshot {
	return Snapshot{
		VideoPackets: s.VideoPackets - o.VideoPackets,
		VideoBytes:   s.VideoBytes - o.VideoBytes,
		VideoFrames:  s.VideoFrames - o.VideoFrames,
		AudioPackets: s.AudioPackets - o.AudioPackets,
		AudioBytes:   s.AudioBytes - o.AudioBytes,
	}
}

// Participant is one joined load-test participant.
type Participant struct {
	RoomIndex int
	Publishes bool
	Received  Counters
	JoinMs    float64
	room      *lksdk.Room
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Media is the pre-encoded clips every publisher loops over.
type Media struct {
	Layers []*VideoClip // lowest first
	Audio  *AudioClip
	FPS    int
}

// joinParticipant connects one participant, starts counting what it receives and, if it
// publishes, starts sending the simulcast video and the audio.
func joinParticipant(cfg *Config, m *Media, roomIndex, seat int, publishes bool) (*Participant, error) {
	p := &Participant{RoomIndex: roomIndex, Publishes: publishes, stop: make(chan struct{})}
	roomName := fmt.Sprintf("%s-%d", cfg.RoomPrefix, roomIndex+1)
	identity := fmt.Sprintf("load-%d-%d", roomIndex+1, seat)
	callback := &lksdk.RoomCallback{
		ParticipantCallback: lksdk.ParticipantCallback{
			OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
				go p.count(track)
			},
		},
	}
	started := time.Now()
	room, err := lksdk.ConnectToRoom(cfg.URL, lksdk.ConnectInfo{
		APIKey:              cfg.APIKey,
		APISecret:           cfg.APISecret,
		RoomName:            roomName,
		ParticipantIdentity: identity,
	}, callback, lksdk.WithDisableRegionDiscovery(), lksdk.WithDisableTURN())
	if err != nil {
		return nil, fmt.Errorf("%s cannot join %s at %s: %w", identity, roomName, cfg.URL, err)
	}
	p.JoinMs = float64(time.Since(started).Microseconds()) / 1000
	p.room = room
	if publishes {
		if err := p.publish(m); err != nil {
			room.Disconnect()
			return nil, fmt.Errorf("%s cannot publish: %w", identity, err)
		}
	}
	return p, nil
}

// count reads one subscribed track until it ends, counting packets, payload bytes and pictures.
func (p *Participant) count(track *webrtc.TrackRemote) {
	video := track.Kind() == webrtc.RTPCodecTypeVideo
	for {
		packet, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		if video {
			p.Received.VideoPackets.Add(1)
			p.Received.VideoBytes.Add(uint64(len(packet.Payload)))
			if packet.Marker {
				p.Received.VideoFrames.Add(1)
			}
		} else {
			p.Received.AudioPackets.Add(1)
			p.Received.AudioBytes.Add(uint64(len(packet.Payload)))
		}
	}
}

// qualities names the layers top down, the way LiveKit's clients do.
var qualities = []livekit.VideoQuality{livekit.VideoQuality_HIGH, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_LOW}

// publish sends every layer of the camera and the audio until the participant leaves. A
// keyframe request (PLI or FIR) on a layer makes its next picture the clip's keyframe, as
// Aula's encoder does; there are no periodic keyframes.
func (p *Participant) publish(m *Media) error {
	top := m.Layers[len(m.Layers)-1].Layer
	tracks := make([]*lksdk.LocalTrack, len(m.Layers))
	keyframeWanted := make([]atomic.Bool, len(m.Layers))
	for i, clip := range m.Layers {
		index := i
		quality := qualities[len(m.Layers)-1-i]
		track, err := lksdk.NewLocalTrack(h264,
			lksdk.WithSimulcast("camera", &livekit.VideoLayer{
				Quality: quality,
				Width:   uint32(clip.Layer.Width),
				Height:  uint32(clip.Layer.Height),
				Bitrate: uint32(clip.Layer.MaxBitrateBps),
			}),
			lksdk.WithRTCPHandler(func(packet rtcp.Packet) {
				switch packet.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					keyframeWanted[index].Store(true)
				}
			}))
		if err != nil {
			return err
		}
		tracks[i] = track
	}
	if _, err := p.room.LocalParticipant.PublishSimulcastTrack(tracks, &lksdk.TrackPublicationOptions{
		Name:        "camera",
		Source:      livekit.TrackSource_CAMERA,
		VideoWidth:  top.Width,
		VideoHeight: top.Height,
	}); err != nil {
		return err
	}
	audio, err := lksdk.NewLocalTrack(opus)
	if err != nil {
		return err
	}
	if _, err := p.room.LocalParticipant.PublishTrack(audio, &lksdk.TrackPublicationOptions{
		Name:   "tone",
		Source: livekit.TrackSource_MICROPHONE,
	}); err != nil {
		return err
	}
	p.wg.Add(2)
	go p.sendVideo(m, tracks, keyframeWanted)
	go p.sendAudio(m.Audio, audio)
	return nil
}

func (p *Participant) sendVideo(m *Media, tracks []*lksdk.LocalTrack, keyframeWanted []atomic.Bool) {
	defer p.wg.Done()
	interval := time.Second / time.Duration(m.FPS)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	next := make([]int, len(tracks)) // 0: the keyframe
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
		}
		for i, track := range tracks {
			frames := m.Layers[i].Frames
			if keyframeWanted[i].Swap(false) {
				next[i] = 0
			}
			sample := media.Sample{Data: frames[next[i]], Duration: interval}
			// An unbound or closing track drops the picture; the stream goes on.
			_ = track.WriteSample(sample, nil)
			// Loop over the predicted pictures only: the keyframe comes back on request.
			next[i]++
			if next[i] == len(frames) {
				next[i] = 1
			}
		}
	}
}

func (p *Participant) sendAudio(clip *AudioClip, track *lksdk.LocalTrack) {
	defer p.wg.Done()
	const frame = 20 * time.Millisecond
	ticker := time.NewTicker(frame)
	defer ticker.Stop()
	for n := 0; ; n++ {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
		}
		sample := media.Sample{Data: clip.Packets[n%len(clip.Packets)], Duration: frame}
		_ = track.WriteSample(sample, nil)
	}
}

// leave stops sending and disconnects.
func (p *Participant) leave() {
	close(p.stop)
	p.wg.Wait()
	p.room.Disconnect()
}
