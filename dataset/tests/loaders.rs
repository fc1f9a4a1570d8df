//! Labelled-set loaders on small files the tests write: CIFAR-10/100 binary batches,
//! image folders (PNG, JPEG), `.npz`; the dispatching `LabelledSet::open`; bad files as
//! errors; and the opt-in transforms (normalisation, seeded augmentation).

use std::path::{Path, PathBuf};

use fqc_dataset::cifar::{self, Cifar};
use fqc_dataset::{npz, Augment, FolderOptions, LabelledSet, Normalize, Rng};
use fqc_ir::{Tensor, TensorData};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fqc_dataset_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` CIFAR-shaped images whose pixels encode (image, channel, position).
fn cifar_set(n: usize, first_label: i64, classes: i64) -> LabelledSet {
    let mut px = Vec::with_capacity(n * cifar::IMAGE_BYTES);
    for i in 0..n {
        for k in 0..cifar::IMAGE_BYTES {
            px.push(((i * 7 + k * 3) % 256) as u8);
        }
    }
    LabelledSet {
        x: Tensor {
            shape: vec![n, 3, 32, 32],
            data: TensorData::U8(px),
        },
        y: (0..n as i64).map(|i| (first_label + i) % classes).collect(),
    }
}

fn u8s(t: &Tensor) -> &[u8] {
    match &t.data {
        TensorData::U8(v) => v,
        _ => panic!("expected u8 pixels"),
    }
}

#[test]
fn cifar10_batches_by_split_and_single_files() {
    let dir = tmp("cifar10");
    let (a, b, t) = (
        cifar_set(3, 0, 10),
        cifar_set(2, 5, 10),
        cifar_set(4, 8, 10),
    );
    for (name, s) in [
        ("data_batch_1.bin", &a),
        ("data_batch_2.bin", &b),
        ("test_batch.bin", &t),
    ] {
        std::fs::write(dir.join(name), cifar::write(Cifar::Ten, s).unwrap()).unwrap();
    }
    std::fs::write(dir.join("batches.meta.txt"), "airplane\n").unwrap();
    let train = LabelledSet::open(&dir, "train").unwrap();
    assert_eq!(train.x.shape, vec![5, 3, 32, 32]);
    assert_eq!(train.y, [a.y.clone(), b.y.clone()].concat());
    assert_eq!(u8s(&train.x), [u8s(&a.x), u8s(&b.x)].concat().as_slice());
    let test = LabelledSet::open(&dir, "test").unwrap();
    assert_eq!(test.y, t.y);
    assert_eq!(u8s(&test.x), u8s(&t.x));
    let one = LabelledSet::open(&dir.join("data_batch_2.bin"), "ignored").unwrap();
    assert_eq!(one.y, b.y);
    // Model input: raw pixel values.
    let batch = test.batch(0, 2);
    assert_eq!(batch.as_f32().unwrap()[5], f32::from(u8s(&t.x)[5]));

    let e = LabelledSet::open(&dir, "val").unwrap_err().to_string();
    assert!(e.contains("no CIFAR-10 batches for split `val`"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = tmp("cifar100");
    let s = cifar_set(6, 95, 100);
    let bytes = cifar::write(Cifar::Hundred, &s).unwrap();
    assert_eq!(bytes.len(), 6 * 3074);
    assert_eq!(bytes[0], (95 / 5) as u8, "coarse label first");
    std::fs::write(dir.join("train.bin"), &bytes).unwrap();
    let got = LabelledSet::open(&dir, "train").unwrap();
    assert_eq!(got.y, vec![95, 96, 97, 98, 99, 0]);
    assert_eq!(u8s(&got.x), u8s(&s.x));
    // An unofficial name: told apart by the record size.
    std::fs::write(dir.join("mine.bin"), &bytes).unwrap();
    assert_eq!(
        LabelledSet::open(&dir.join("mine.bin"), "x").unwrap().y,
        got.y
    );
    let ten = cifar::write(Cifar::Ten, &cifar_set(2, 0, 10)).unwrap();
    std::fs::write(dir.join("ten.bin"), &ten).unwrap();
    assert_eq!(
        LabelledSet::load_cifar(&dir.join("ten.bin"), "x")
            .unwrap()
            .len(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_cifar_files_are_errors() {
    let dir = tmp("cifar_bad");
    let mut bytes = cifar::write(Cifar::Ten, &cifar_set(2, 0, 10)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &bytes[..bytes.len() - 1]).unwrap();
    let e = LabelledSet::open(&dir, "test").unwrap_err().to_string();
    assert!(e.contains("not a whole number of CIFAR-10 records"), "{e}");
    bytes[0] = 42;
    std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
    let e = LabelledSet::open(&dir, "test").unwrap_err().to_string();
    assert!(e.contains("label 42 is out of range"), "{e}");
    std::fs::write(dir.join("empty.bin"), b"").unwrap();
    assert!(LabelledSet::open(&dir.join("empty.bin"), "test").is_err());
    std::fs::write(dir.join("junk.bin"), [1u8; 100]).unwrap();
    let e = LabelledSet::open(&dir.join("junk.bin"), "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a whole number of CIFAR records"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn save_rgb(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed.wrapping_add(x as u8), (y * 10) as u8, 200])
    });
    img.save(path).unwrap();
}

fn save_gray(path: &Path, w: u32, h: u32, v: u8) {
    image::GrayImage::from_fn(w, h, |x, _| image::Luma([v.wrapping_add(x as u8)]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folders_one_subfolder_per_class() {
    let dir = tmp("folder");
    for c in ["dog", "cat"] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    save_rgb(&dir.join("dog/b.png"), 4, 3, 1);
    save_rgb(&dir.join("dog/a.PNG"), 4, 3, 2);
    save_rgb(&dir.join("cat/z.png"), 4, 3, 3);
    std::fs::write(dir.join("cat/notes.txt"), "not an image").unwrap();
    let set = LabelledSet::open(&dir, "train").unwrap();
    // Classes sorted by name: cat = 0, dog = 1; files sorted within a class.
    assert_eq!(set.y, vec![0, 1, 1]);
    assert_eq!(set.x.shape, vec![3, 3, 3, 4]);
    let px = u8s(&set.x);
    // Image 1 (dog/a.PNG, seed 2), planar: R plane at x=3 is 2+3, G row 2 is 20, B 200.
    let item = 3 * 3 * 4;
    assert_eq!(px[item + 3], 5);
    assert_eq!(px[item + 12 + 2 * 4], 20);
    assert_eq!(px[item + 24 + 7], 200);
    assert_eq!(
        fqc_dataset::folder::class_names(&dir).unwrap(),
        ["cat", "dog"]
    );

    // Sizes must agree, unless a size is given.
    save_rgb(&dir.join("cat/y.png"), 5, 3, 0);
    let e = LabelledSet::open(&dir, "train").unwrap_err().to_string();
    assert!(e.contains("is 3×4 but") && e.contains("one size"), "{e}");
    let opts = FolderOptions { size: Some((6, 8)) };
    let set = LabelledSet::open_with(&dir, "train", &opts).unwrap();
    assert_eq!(set.x.shape, vec![4, 3, 6, 8]);

    // Grayscale and RGB do not mix.
    save_gray(&dir.join("cat/x.png"), 5, 3, 9);
    let e = LabelledSet::open_with(&dir, "train", &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("all grayscale or all RGB"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn image_folders_per_split_grayscale_and_jpeg() {
    let dir = tmp("folder_split");
    for s in ["train", "test"] {
        for c in ["0", "1"] {
            std::fs::create_dir_all(dir.join(s).join(c)).unwrap();
        }
    }
    save_gray(&dir.join("train/0/a.png"), 5, 2, 10);
    save_gray(&dir.join("train/1/a.png"), 5, 2, 20);
    save_gray(&dir.join("test/1/a.png"), 5, 2, 30);
    let train = LabelledSet::open(&dir, "train").unwrap();
    assert_eq!(train.x.shape, vec![2, 1, 2, 5]);
    assert_eq!(train.y, vec![0, 1]);
    assert_eq!(&u8s(&train.x)[..5], &[10, 11, 12, 13, 14]);
    let test = LabelledSet::open(&dir, "test").unwrap();
    assert_eq!(test.y, vec![1]);

    let jdir = tmp("folder_jpeg");
    std::fs::create_dir_all(jdir.join("k")).unwrap();
    save_rgb(&jdir.join("k/a.jpg"), 8, 8, 0);
    let j = LabelledSet::load_image_folder(&jdir, &FolderOptions::default()).unwrap();
    assert_eq!(j.x.shape, vec![1, 3, 8, 8]);
    // A corrupt image is an error naming it.
    std::fs::write(jdir.join("k/b.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let e = LabelledSet::open(&jdir, "train").unwrap_err().to_string();
    assert!(
        e.contains("b.png") && e.contains("cannot read image"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&jdir);
}

#[test]
fn npz_round_trips_through_the_writer_and_open() {
    let dir = tmp("npz");
    let s = cifar_set(3, 4, 10);
    let y = Tensor {
        shape: vec![3],
        data: TensorData::I64(s.y.clone()),
    };
    let path = dir.join("set.npz");
    npz::write(&path, &[("x_train", &s.x), ("y_train", &y)]).unwrap();
    let got = LabelledSet::open(&path, "train").unwrap();
    assert_eq!(got.x, s.x);
    assert_eq!(got.y, s.y);
    let e = LabelledSet::open(&path, "test").unwrap_err().to_string();
    assert!(e.contains("no split `test`"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn open_refuses_what_it_cannot_read() {
    let dir = tmp("nothing");
    let e = LabelledSet::open(&dir, "train").unwrap_err().to_string();
    assert!(e.contains("neither CIFAR batches"), "{e}");
    std::fs::write(dir.join("a.txt"), "x").unwrap();
    let e = LabelledSet::open(&dir.join("a.txt"), "train")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a labelled set"), "{e}");
    assert!(LabelledSet::open(&dir.join("missing.npz"), "train").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

fn ramp(n: usize, c: usize, h: usize, w: usize) -> Tensor {
    Tensor::f32(
        vec![n, c, h, w],
        (0..n * c * h * w).map(|i| (i % 251) as f32 + 1.0).collect(),
    )
    .unwrap()
}

#[test]
fn normalisation_is_per_channel_and_checked() {
    let mut t = ramp(2, 3, 2, 2);
    let orig = t.clone();
    let n = Normalize::new(vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 0.5]).unwrap();
    n.apply(&mut t).unwrap();
    let (a, b) = (orig.as_f32().unwrap(), t.as_f32().unwrap());
    for i in 0..a.len() {
        let c = (i / 4) % 3;
        let want = (a[i] - [1.0, 2.0, 3.0][c]) / [2.0, 4.0, 0.5][c];
        assert_eq!(b[i], want);
    }
    assert!(Normalize::new(vec![0.0], vec![0.0]).is_err());
    assert!(Normalize::new(vec![0.0, 1.0], vec![1.0]).is_err());
    let mut one = ramp(1, 1, 2, 2);
    assert!(n.apply(&mut one).is_err(), "3 channels vs 1");
    let gray = Normalize::new(vec![10.0], vec![5.0]).unwrap();
    let mut two = ramp(1, 2, 1, 1);
    gray.apply(&mut two).unwrap();
    assert_eq!(two.as_f32().unwrap(), &[-1.8, -1.6]);
}

#[test]
fn augmentation_is_seeded_and_keeps_pixels() {
    let t = ramp(8, 2, 5, 6);
    let aug = Augment {
        crop_pad: 2,
        hflip: true,
    };
    let mut a = t.clone();
    let mut b = t.clone();
    aug.apply(&mut a, &mut Rng::new(7)).unwrap();
    aug.apply(&mut b, &mut Rng::new(7)).unwrap();
    assert_eq!(a, b, "same seed, same batch");
    let mut c = t.clone();
    aug.apply(&mut c, &mut Rng::new(8)).unwrap();
    assert_ne!(a, c, "another seed, another batch");
    assert_ne!(a, t);
    // Every output pixel is 0 (padding) or a pixel of the same image and channel.
    let item = 2 * 5 * 6;
    let (src, out) = (t.as_f32().unwrap(), a.as_f32().unwrap());
    for (i, &v) in out.iter().enumerate() {
        let (img, ch) = (i / item, (i % item) / 30);
        let plane = &src[img * item + ch * 30..img * item + ch * 30 + 30];
        assert!(v == 0.0 || plane.contains(&v), "pixel {i} = {v}");
    }
    // No crop, flips only: each image is itself or its mirror.
    let flip = Augment {
        crop_pad: 0,
        hflip: true,
    };
    let mut f = t.clone();
    flip.apply(&mut f, &mut Rng::new(1)).unwrap();
    let mut flipped = 0;
    for img in 0..8 {
        let s = &src[img * item..(img + 1) * item];
        let o = &f.as_f32().unwrap()[img * item..(img + 1) * item];
        let mirror: Vec<f32> = (0..item)
            .map(|k| {
                let (row, x) = (k / 6, k % 6);
                s[row * 6 + 5 - x]
            })
            .collect();
        if o == mirror.as_slice() {
            flipped += 1;
        } else {
            assert_eq!(o, s);
        }
    }
    assert!((1..8).contains(&flipped), "{flipped} of 8 flipped");
    let mut same = t.clone();
    Augment::default()
        .apply(&mut same, &mut Rng::new(3))
        .unwrap();
    assert_eq!(same, t);
    // Through the set: augment then normalise.
    let set = cifar_set(4, 0, 10);
    let mut r1 = Rng::new(5);
    let mut r2 = Rng::new(5);
    let norm = Normalize::new(vec![0.0; 3], vec![255.0; 3]).unwrap();
    let x1 = set
        .batch_with(0, 4, Some((&aug, &mut r1)), Some(&norm))
        .unwrap();
    let x2 = set
        .batch_with(0, 4, Some((&aug, &mut r2)), Some(&norm))
        .unwrap();
    assert_eq!(x1, x2);
    assert!(x1.as_f32().unwrap().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(set.batch_with(0, 4, None, None).unwrap(), set.batch(0, 4));
}

#[test]
fn shuffle_is_a_seeded_permutation() {
    let shuffled = |seed| {
        let mut v: Vec<usize> = (0..100).collect();
        Rng::new(seed).shuffle(&mut v);
        v
    };
    let a = shuffled(7);
    assert_eq!(a, shuffled(7));
    assert_ne!(a, shuffled(8));
    assert_ne!(a, (0..100).collect::<Vec<_>>());
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    let mut empty: [u8; 0] = [];
    Rng::new(1).shuffle(&mut empty);
}
