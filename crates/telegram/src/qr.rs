//! The QR image of a redemption code, so the administrator can scan it off the client's phone.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module.
const SCALE: usize = 8;
/// Light modules around the code, as the QR standard asks.
const QUIET: usize = 4;

/// Why a code could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text does not fit a QR code: {0}")]
    Encode(String),
    #[error("the PNG could not be written: {0}")]
    Png(String),
}

/// A black-on-white PNG of `text` as a QR code (error correction M), 8 px per module with a
/// 4-module quiet zone: a code like `ABCD-EFGH-K` (21 × 21 modules) gives a 232 px square.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![0xFFu8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (i % modules + QUIET, i / modules + QUIET);
        for row in y * SCALE..(y + 1) * SCALE {
            pixels[row * side + x * SCALE..row * side + (x + 1) * SCALE].fill(0);
        }
    }
    let side_u32 = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side_u32, side_u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| QrError::Png(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| QrError::Png(e.to_string()))?;
    writer.finish().map_err(|e| QrError::Png(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image is a real PNG of the size the matrix asks for, and its pixels are the matrix:
    /// decoded again, the module grid matches `QrCode` exactly.
    #[test]
    fn the_png_is_the_qr_matrix() {
        let text = "ABCD-EFGH-K";
        let bytes = png(text).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        let modules = code.width();
        let side = (modules + 2 * QUIET) * SCALE;
        assert_eq!((info.width as usize, info.height as usize), (side, side));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        let colors = code.to_colors();
        for y in 0..modules + 2 * QUIET {
            for x in 0..modules + 2 * QUIET {
                // The centre pixel of each module.
                let px = buf[(y * SCALE + SCALE / 2) * side + x * SCALE + SCALE / 2];
                let inside =
                    (QUIET..QUIET + modules).contains(&x) && (QUIET..QUIET + modules).contains(&y);
                let dark = inside && colors[(y - QUIET) * modules + (x - QUIET)] == Color::Dark;
                assert_eq!(px, if dark { 0 } else { 0xFF }, "module ({x}, {y})");
            }
        }
    }
}
