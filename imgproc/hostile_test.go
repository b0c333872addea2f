package imgproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
)

// pngHeader is a PNG signature and IHDR chunk (8-bit RGB) claiming w×h
// pixels, with no pixel data after it.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32([]byte("IHDR"), w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// jpegHeader is a JPEG start and a baseline SOF0 segment claiming w×h
// pixels in three components (the format's sizes are 16-bit), preceded
// by a JFIF APP0 segment or followed by a start of scan.
func jpegHeader(w, h uint16, jfif bool) []byte {
	b := []byte{0xff, 0xd8}
	if jfif {
		b = append(b, 0xff, 0xe0, 0, 16)
		b = append(b, "JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"...)
	}
	b = append(b, 0xff, 0xc0, 0, 17, 8)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0)
	if !jfif {
		b = append(b, 0xff, 0xda, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0)
	}
	return append(b, 0xff, 0xd9)
}

// gifHeader is a GIF header whose logical screen is w×h (16-bit sizes).
func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 0, 0, 0x3b)
}

// bmpHeader is a BMP file header and BITMAPINFOHEADER (24-bit) claiming
// w×h pixels.
func bmpHeader(w, h int32) []byte {
	b := []byte("BM")
	b = binary.LittleEndian.AppendUint32(b, 54)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 54)
	b = binary.LittleEndian.AppendUint32(b, 40)
	b = binary.LittleEndian.AppendUint32(b, uint32(w))
	b = binary.LittleEndian.AppendUint32(b, uint32(h))
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 24)
	return append(b, make([]byte, 24)...)
}

// webpHeader is an extended (VP8X) WebP whose canvas is w×h (24-bit
// sizes), with no image chunk after it.
func webpHeader(w, h uint32) []byte {
	chunk := []byte("VP8X")
	chunk = binary.LittleEndian.AppendUint32(chunk, 10)
	chunk = append(chunk, 0, 0, 0, 0)
	chunk = append(chunk, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	chunk = append(chunk, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return riffWebP(chunk)
}

// webpLossless is a lossless (VP8L) WebP header claiming w×h pixels
// (14-bit sizes), with no image data after it.
func webpLossless(w, h uint32) []byte {
	chunk := []byte("VP8L")
	chunk = binary.LittleEndian.AppendUint32(chunk, 5)
	chunk = append(chunk, 0x2f)
	chunk = binary.LittleEndian.AppendUint32(chunk, (w-1)|(h-1)<<14)
	return riffWebP(append(chunk, 0)) // RIFF chunks are padded to even sizes
}

func riffWebP(chunk []byte) []byte {
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+len(chunk)))
	b = append(b, "WEBP"...)
	return append(b, chunk...)
}

// TestDecompressionBombs: headers claiming huge images are refused from
// the header, before any pixel buffer is allocated. The limit is
// DefaultMaxPixels (Pillow's 89,478,485); memory allocated while refusing
// must stay under 1 MiB + 64 × the file size.
func TestDecompressionBombs(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		want string
		// tooLarge: refused by the pixel limit (else by the decoder's
		// own header check).
		tooLarge bool
	}{
		{"bomb.png", pngHeader(100000, 100000), "image too large: 100000x100000 is 10000000000 pixels, over the limit of 89478485", true},
		{"bomb.jpg", jpegHeader(65535, 65535, true), "image too large: 65535x65535 is 4294836225 pixels, over the limit of 89478485", true},
		{"bomb-sos.jpg", jpegHeader(65535, 65535, false), "image too large: 65535x65535 is 4294836225 pixels, over the limit of 89478485", true},
		{"bomb.gif", gifHeader(65535, 65535), "image too large: 65535x65535 is 4294836225 pixels, over the limit of 89478485", true},
		{"bomb.bmp", bmpHeader(100000, 100000), "image too large: 100000x100000 is 10000000000 pixels, over the limit of 89478485", true},
		{"bomb.webp", webpLossless(16384, 16384), "image too large: 16384x16384 is 268435456 pixels, over the limit of 89478485", true},
		{"wide.png", pngHeader(1<<31-1, 1), "image too large: 2147483647x1 is 2147483647 pixels", true},
		{"canvas.webp", webpHeader(100000, 100000), "unreadable webp header: webp: invalid format", false},
		{"tall.bmp", bmpHeader(1, -100000000), "image too large: 1x100000000 is 100000000 pixels", true}, // top-down
	} {
		t.Run(c.name, func(t *testing.T) {
			var (
				img *Image
				err error
			)
			alloc := memcap.Allocated(func() { img, err = Decode(c.data, c.name) })
			if img != nil || err == nil || !strings.Contains(err.Error(), c.name+": "+c.want) || (c.tooLarge && !errors.Is(err, ErrTooLarge)) {
				t.Errorf("error %v, want ErrTooLarge with %q", err, c.want)
			}
			memcap.Check(t, alloc, memcap.Limit(1<<20, len(c.data)), "refusing a %d-byte file", len(c.data))
		})
	}
}

// TestExtremeAspectRatio: a thin image is small to decode but huge once
// its shorter side is resized to 256; Preprocessor refuses it.
func TestExtremeAspectRatio(t *testing.T) {
	m := image.NewPaletted(image.Rect(0, 0, 1, 65535), color.Palette{color.Black, color.White})
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b.Bytes(), "thin.gif")
	if err != nil {
		t.Fatal(err)
	}
	p := Preprocessor{Resize: 256, W: 224, H: 224}
	var werr error
	alloc := memcap.Allocated(func() { werr = p.Write(make([]float32, 3*224*224), 0, img) })
	if !errors.Is(werr, ErrTooLarge) || !strings.Contains(werr.Error(), "a 1x65535 image resized to shorter side 256 would be 256x16776960") {
		t.Errorf("error %v, want ErrTooLarge naming the sizes", werr)
	}
	memcap.Check(t, alloc, 4<<20, "refusing it")
	// Straight to the input size is fine.
	if err := (&Preprocessor{W: 32, H: 32}).Write(make([]float32, 3*32*32), 0, img); err != nil {
		t.Errorf("direct resize: %v", err)
	}
}
