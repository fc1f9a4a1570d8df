//! Image folders: `root/<class>/*.png|jpg|jpeg`, one sub-folder per class.
//!
//! Classes are the sub-folders sorted by name (label = position in that order, so
//! `0/`, `1/`, … or `cat/`, `dog/` both work); images within a class are read in name
//! order. Every image must have the same size unless [`FolderOptions::size`] asks for a
//! resize (bilinear, to `H×W`), and all must be grayscale (one channel) or all colour
//! (three; an alpha channel is dropped). Headers are read before decoding, and the
//! total pixel count is capped at [`crate::MAX_ELEMENTS`].

use std::path::{Path, PathBuf};

use fqc_ir::{Tensor, TensorData};
use image::{DynamicImage, ImageReader};

use crate::{DataError, LabelledSet, Result, MAX_ELEMENTS};

/// How an image folder is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Resize every image to `(height, width)`; `None`: all images must be one size.
    pub size: Option<(usize, usize)>,
}

/// Image file extensions read (case-insensitive).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Largest side of an image fqc decodes.
const MAX_SIDE: u32 = 1 << 14;

fn file_err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Sub-folders of `dir`, sorted by name.
pub fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    classes.sort();
    Ok(classes)
}

/// Whether `dir` looks like an image folder (a sub-folder holding an image).
pub fn is_image_folder(dir: &Path) -> bool {
    class_dirs(dir).is_ok_and(|c| {
        c.iter().any(|(_, p)| {
            std::fs::read_dir(p)
                .is_ok_and(|mut es| es.any(|e| e.is_ok_and(|e| is_image(&e.path()))))
        })
    })
}

/// The class names of an image folder, in label order.
pub fn class_names(dir: &Path) -> Result<Vec<String>> {
    Ok(class_dirs(dir)?.into_iter().map(|(n, _)| n).collect())
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let fail = |e: image::ImageError| file_err(path, format!("cannot read image: {e}"));
    let reader = ImageReader::open(path)
        .map_err(io_err(path))?
        .with_guessed_format()
        .map_err(io_err(path))?;
    let (w, h) = reader.into_dimensions().map_err(fail)?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(file_err(
            path,
            format!("image size {w}×{h} is not supported"),
        ));
    }
    let mut reader = ImageReader::open(path)
        .map_err(io_err(path))?
        .with_guessed_format()
        .map_err(io_err(path))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    reader.decode().map_err(fail)
}

/// Reads the image folder `dir` (see the module docs).
pub fn load(dir: &Path, opts: &FolderOptions) -> Result<LabelledSet> {
    if let Some((h, w)) = opts.size {
        if h == 0 || w == 0 || h > MAX_SIDE as usize || w > MAX_SIDE as usize {
            return Err(DataError::Format(format!(
                "image size {h}×{w} is not supported"
            )));
        }
    }
    let classes = class_dirs(dir)?;
    if classes.is_empty() {
        return Err(file_err(
            dir,
            "no class sub-folders (expected ROOT/<class>/*.png|jpg)",
        ));
    }
    let mut files: Vec<(PathBuf, i64)> = Vec::new();
    for (label, (_, cdir)) in classes.iter().enumerate() {
        let mut imgs: Vec<PathBuf> = std::fs::read_dir(cdir)
            .map_err(io_err(cdir))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| is_image(p))
            .collect();
        imgs.sort();
        files.extend(imgs.into_iter().map(|p| (p, label as i64)));
    }
    if files.is_empty() {
        return Err(file_err(
            dir,
            format!(
                "no images ({}) in the class sub-folders",
                EXTENSIONS.join(", ")
            ),
        ));
    }
    // (channels, height, width, the file that set them)
    let mut geometry: Option<(usize, usize, usize, PathBuf)> = None;
    let mut pixels: Vec<u8> = Vec::new();
    let mut labels = Vec::with_capacity(files.len());
    for (path, label) in &files {
        let img = decode(path)?;
        let channels = if img.color().has_color() { 3 } else { 1 };
        let img = match opts.size {
            Some((h, w)) if (img.height() as usize, img.width() as usize) != (h, w) => {
                img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
            }
            _ => img,
        };
        let (h, w) = (img.height() as usize, img.width() as usize);
        match &geometry {
            None => {
                let per = (channels * h * w) as u64;
                if per.saturating_mul(files.len() as u64) > MAX_ELEMENTS {
                    return Err(file_err(
                        dir,
                        format!(
                            "{} images of {channels}×{h}×{w} are more than fqc reads at once",
                            files.len()
                        ),
                    ));
                }
                pixels.reserve_exact(per as usize * files.len());
                geometry = Some((channels, h, w, path.clone()));
            }
            Some((c0, h0, w0, first)) => {
                if *c0 != channels {
                    let kind = |c: usize| if c == 1 { "grayscale" } else { "RGB" };
                    return Err(file_err(
                        path,
                        format!(
                            "is {} but {} is {}: an image folder must be all grayscale or all RGB",
                            kind(channels),
                            first.display(),
                            kind(*c0)
                        ),
                    ));
                }
                if (*h0, *w0) != (h, w) {
                    return Err(file_err(
                        path,
                        format!(
                            "is {h}×{w} but {} is {h0}×{w0}: images must have one size (or pass a size to resize to)",
                            first.display()
                        ),
                    ));
                }
            }
        }
        // Interleaved HWC to planar CHW.
        let hwc: Vec<u8> = if channels == 3 {
            img.to_rgb8().into_raw()
        } else {
            img.to_luma8().into_raw()
        };
        for c in 0..channels {
            pixels.extend(hwc.iter().skip(c).step_by(channels));
        }
        labels.push(*label);
    }
    let (c, h, w, _) = geometry.unwrap_or((1, 0, 0, PathBuf::new()));
    Ok(LabelledSet {
        x: Tensor {
            shape: vec![labels.len(), c, h, w],
            data: TensorData::U8(pixels),
        },
        y: labels,
    })
}
