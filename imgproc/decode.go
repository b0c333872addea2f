package imgproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"path/filepath"
	"strings"

	"github.com/resnetctl/resnetctl/internal/regularfile"
	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// DefaultMaxPixels is the largest image (width × height) decoded unless a
// Decoder says otherwise: Pillow's MAX_IMAGE_PIXELS, 89,478,485 (a quarter
// GiB at 3 bytes a pixel).
const DefaultMaxPixels = 89_478_485

// DefaultMaxBytes is the largest encoded file read unless a Decoder says
// otherwise.
const DefaultMaxBytes = 256 << 20

// ErrTooLarge is wrapped by errors about images over a Decoder's limits.
var ErrTooLarge = errors.New("image too large")

// ErrNotImage is wrapped by errors about data that is no supported image.
var ErrNotImage = errors.New("not a supported image")

// Formats returns the encodings Decode reads: jpeg, png, gif, bmp, webp.
func Formats() []string { return []string{"jpeg", "png", "gif", "bmp", "webp"} }

var extensions = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}

// Extensions returns the file name extensions (lower case) of Formats.
func Extensions() []string { return append([]string(nil), extensions...) }

// IsImageName reports whether name has one of the Extensions (any case).
func IsImageName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range extensions {
		if ext == e {
			return true
		}
	}
	return false
}

type format struct {
	name   string
	magic  func([]byte) bool
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// The registry is local rather than image.RegisterFormat's global one, so
// what this package decodes does not depend on what else a program imports.
var formats = []format{
	{"jpeg", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\xff\xd8")) }, jpeg.DecodeConfig, jpeg.Decode},
	{"png", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }, png.DecodeConfig, png.Decode},
	{"gif", func(b []byte) bool {
		return bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a"))
	}, gif.DecodeConfig, gif.Decode},
	{"bmp", func(b []byte) bool { return bytes.HasPrefix(b, []byte("BM")) }, bmp.DecodeConfig, bmp.Decode},
	{"webp", func(b []byte) bool {
		return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP"
	}, webp.DecodeConfig, webp.Decode},
}

// Decoder decodes image files into planar RGB. The zero value is ready to
// use with the default limits; a Decoder is safe for concurrent use.
type Decoder struct {
	// MaxPixels refuses images with more pixels (width × height), checked
	// from the header before any pixel is decoded. 0 means DefaultMaxPixels.
	MaxPixels int64
	// MaxBytes refuses encoded files longer than this. 0 means
	// DefaultMaxBytes.
	MaxBytes int64
}

// Decode decodes data, an encoded image named name (a file name or archive
// member used in errors), into planar RGB as Pillow's convert("RGB") would.
// It reports the format ("jpeg", "png", ...). GIFs give their first frame.
func (d *Decoder) Decode(data []byte, name string) (*Image, string, error) {
	var f *format
	for i := range formats {
		if formats[i].magic(data) {
			f = &formats[i]
			break
		}
	}
	if f == nil {
		what := "unknown format"
		if len(data) == 0 {
			what = "empty file"
		}
		return nil, "", fmt.Errorf("%s: %w (%s; want %s)", name, ErrNotImage, what, strings.Join(Formats(), ", "))
	}
	maxBytes := d.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if int64(len(data)) > maxBytes {
		return nil, f.name, fmt.Errorf("%s: %w: %d bytes, over the limit of %d", name, ErrTooLarge, len(data), maxBytes)
	}
	cfg, err := f.config(bytes.NewReader(data))
	if err != nil {
		return nil, f.name, fmt.Errorf("%s: unreadable %s header: %w", name, f.name, explain(err))
	}
	maxPix := d.MaxPixels
	if maxPix <= 0 {
		maxPix = DefaultMaxPixels
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, f.name, fmt.Errorf("%s: %s image has no pixels (%dx%d)", name, f.name, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > maxPix {
		return nil, f.name, fmt.Errorf("%s: %w: %dx%d is %d pixels, over the limit of %d", name, ErrTooLarge, cfg.Width, cfg.Height, px, maxPix)
	}
	img, err := f.decode(bytes.NewReader(data))
	if err != nil {
		return nil, f.name, fmt.Errorf("%s: unreadable %s: %w", name, f.name, explain(err))
	}
	screen := image.Rect(0, 0, cfg.Width, cfg.Height)
	if b := img.Bounds(); b != screen {
		if f.name != "gif" || !b.In(screen) {
			return nil, f.name, fmt.Errorf("%s: %s decoded to %v but its header says %dx%d", name, f.name, b, cfg.Width, cfg.Height)
		}
		// A GIF's first frame may cover part of the screen: place it on a
		// black canvas of the screen's size.
		canvas := NewImage(cfg.Width, cfg.Height)
		frame := FromImage(img)
		n, fn := canvas.W*canvas.H, frame.W*frame.H
		for c := 0; c < 3; c++ {
			for y := 0; y < frame.H; y++ {
				o := c*n + (b.Min.Y+y)*canvas.W + b.Min.X
				copy(canvas.Pix[o:o+frame.W], frame.Pix[c*fn+y*frame.W:])
			}
		}
		return canvas, f.name, nil
	}
	if f.name == "webp" {
		switch m := img.(type) {
		case *image.YCbCr:
			return FromWebPYUV(m), f.name, nil
		case *image.NYCbCrA: // alpha is dropped, as by convert("RGB")
			return FromWebPYUV(&m.YCbCr), f.name, nil
		}
	}
	return FromImage(img), f.name, nil
}

// explain turns the decoders' ways of saying the data ended early into
// words.
func explain(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("truncated file (%w)", err)
	case strings.Contains(msg, "short Huffman data"), strings.Contains(msg, "not enough pixel data"):
		return fmt.Errorf("truncated or corrupt file (%w)", err)
	}
	return err
}

// ReadFile reads and decodes the image file at path. Only regular files
// are read: a FIFO named x.png would block the read forever.
func (d *Decoder) ReadFile(path string) (*Image, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return d.Read(f, path)
}

// Read reads r to the end (at most MaxBytes+1 bytes) and decodes it.
func (d *Decoder) Read(r io.Reader, name string) (*Image, error) {
	maxBytes := d.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	img, _, err := d.Decode(data, name)
	return img, err
}

// DecodeFile decodes the image file at path with the default limits.
func DecodeFile(path string) (*Image, error) {
	var d Decoder
	return d.ReadFile(path)
}

// Decode decodes an encoded image with the default limits; name is used
// in errors.
func Decode(data []byte, name string) (*Image, error) {
	var d Decoder
	img, _, err := d.Decode(data, name)
	return img, err
}
