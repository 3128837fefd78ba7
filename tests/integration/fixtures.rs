//! Ready-made images written into a test's directory and loaded.

use std::path::PathBuf;

use crate::harness::TestCtx;
use crate::images::{self, Config, Image, RootfsOpts};

/// Name of the standard busybox image.
pub const BASE: &str = "test/base:1";

/// Write a docker-archive of `imgs` to the test dir.
pub fn write_docker_archive(t: &TestCtx, file: &str, imgs: &[Image]) -> PathBuf {
    t.write(file, images::docker_archive(imgs))
}

/// Write an OCI archive of `imgs` to the test dir.
pub fn write_oci_archive(t: &TestCtx, file: &str, imgs: &[Image]) -> PathBuf {
    t.write(file, images::oci_archive(imgs))
}

/// The busybox rootfs as one uncompressed layer tar.
pub fn base_layer(t: &TestCtx) -> Vec<u8> {
    images::tar(&images::busybox_rootfs(&t.busybox, &RootfsOpts::default()))
}

/// Build and load the standard image ([`BASE`]); returns its name.
pub fn load_base(t: &TestCtx) -> &'static str {
    load_image(t, images::base_image(&t.busybox, BASE));
    BASE
}

/// Build an image with the base layer and this config, load it.
pub fn load_with_config(t: &TestCtx, tag: &str, config: Config) -> String {
    let img = Image::new(tag, vec![base_layer(t)], config);
    load_image(t, img);
    tag.to_string()
}

/// Write `img` as a docker-archive and load it.
pub fn load_image(t: &TestCtx, img: Image) {
    let file = format!("{}.tar", img.tags[0].replace(['/', ':'], "_"));
    let p = write_docker_archive(t, &file, &[img]);
    t.load(&p);
}
