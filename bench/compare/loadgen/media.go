package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// clipSeconds is the length of each pre-encoded clip; publishers loop over it.
const clipSeconds = 10

// audioBitrateBps is what Aula's Opus encoder targets (core/src/room/publish.rs).
const audioBitrateBps = 32_000

// VideoClip is one layer's pre-encoded pictures as Annex-B access units: the first is a
// keyframe (SPS, PPS, IDR), the others are predicted pictures.
type VideoClip struct {
	Layer  Layer
	Frames [][]byte
}

// prepareVideo encodes (once, cached in dir) a clip of a moving test pattern at the layer's
// size, frame rate and bit rate with x264's baseline profile, one slice per picture and a
// single keyframe at the start, and reads it back.
func prepareVideo(dir string, layer Layer, fps int) (*VideoClip, error) {
	path := filepath.Join(dir, fmt.Sprintf("video-%dx%d-%dfps-%dbps.h264", layer.Width, layer.Height, fps, layer.MaxBitrateBps))
	kbps := layer.MaxBitrateBps / 1000
	if err := encodeOnce(path,
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", layer.Width, layer.Height, fps),
		"-t", fmt.Sprint(clipSeconds), "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency", "-threads", "1",
		"-b:v", fmt.Sprintf("%dk", kbps), "-maxrate", fmt.Sprintf("%dk", kbps),
		"-bufsize", fmt.Sprintf("%dk", kbps),
		"-g", fmt.Sprint(clipSeconds*fps*2), "-keyint_min", fmt.Sprint(clipSeconds*fps*2), "-sc_threshold", "0",
		"-bsf:v", "h264_mp4toannexb", "-f", "h264",
	); err != nil {
		return nil, err
	}
	frames, err := readAccessUnits(path)
	if err != nil {
		return nil, err
	}
	if len(frames) < 2 {
		return nil, fmt.Errorf("%s holds %d pictures; expected a clip", path, len(frames))
	}
	return &VideoClip{Layer: layer, Frames: frames}, nil
}

// readAccessUnits splits an Annex-B file into pictures: each ends with its slice NAL unit
// (one slice per picture), parameter sets and SEI travel with the picture after them.
func readAccessUnits(path string) ([][]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	reader, err := h264reader.NewReader(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var frames [][]byte
	var current bytes.Buffer
	for {
		nal, err := reader.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch nal.UnitType {
		case h264reader.NalUnitTypeAUD, h264reader.NalUnitTypeSEI:
			continue // the receiver needs neither; Aula's encoder sends neither
		}
		current.Write([]byte{0, 0, 0, 1})
		current.Write(nal.Data)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
			frames = append(frames, bytes.Clone(current.Bytes()))
			current.Reset()
		}
	}
	return frames, nil
}

// AudioClip is Opus packets of 20 ms each.
type AudioClip struct {
	Packets [][]byte
}

// prepareAudio encodes (once, cached in dir) a 440 Hz tone as Opus at 48 kHz in 20 ms
// packets at a constant rate, one packet per Ogg page, and reads the packets back.
func prepareAudio(dir string) (*AudioClip, error) {
	path := filepath.Join(dir, fmt.Sprintf("audio-440hz-%dbps-cbr.ogg", audioBitrateBps))
	if err := encodeOnce(path,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(clipSeconds), "-ac", "1",
		"-c:a", "libopus", "-b:a", fmt.Sprint(audioBitrateBps), "-vbr", "off", "-frame_duration", "20",
		"-application", "voip", "-page_duration", "20000", "-f", "ogg",
	); err != nil {
		return nil, err
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	ogg, _, err := oggreader.NewWith(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	clip := &AudioClip{}
	for {
		page, header, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if header.GranulePosition == 0 {
			continue // the OpusHead and OpusTags pages
		}
		clip.Packets = append(clip.Packets, page)
	}
	if len(clip.Packets) == 0 {
		return nil, fmt.Errorf("%s holds no Opus packets", path)
	}
	return clip, nil
}

// encodeOnce runs ffmpeg with args into path unless path exists, writing through a temporary
// file so an interrupted run leaves nothing half-written.
func encodeOnce(path string, args ...string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	partial := path + ".partial"
	full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	full = append(full, partial)
	cmd := exec.Command("ffmpeg", full...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.Remove(partial)
		return fmt.Errorf("ffmpeg could not encode %s: %w", path, err)
	}
	return os.Rename(partial, path)
}
