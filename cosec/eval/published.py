"""The paper's published numbers (CoSeC-LCD, Tables 1-5), shown beside ours and marked as published.

Source: the paper's text (Tables 1-5, transcribed; ../shared/paper and REFERENCE.md section 5). Each
benchmark maps a table to its rows: (model name of metrics.json, steps, {metric: value}). Only the paper's
own rows and its teacher's are kept (the other baselines of Tables 1-2 are not methods of this project).
"""

from __future__ import annotations

# benchmark -> (paper table, its caption, its columns, rows)
PUBLISHED: dict[str, tuple[int, str, tuple[str, ...], list[tuple[str, int, dict[str, float]]]]] = {
    "tiktok": (
        1,
        "main comparison, TikTok",
        ("ssim", "lpips", "fid", "fid_vid", "fvd"),
        [
            ("teacher", 20, {"ssim": 0.804, "lpips": 0.231, "fid": 30.17, "fid_vid": 21.23, "fvd": 162.62}),
            (
                "referencelcm",
                2,
                {"ssim": 0.766, "lpips": 0.259, "fid": 32.11, "fid_vid": 22.86, "fvd": 203.37},
            ),
            ("student", 2, {"ssim": 0.769, "lpips": 0.253, "fid": 29.13, "fid_vid": 21.01, "fvd": 181.72}),
        ],
    ),
    "ubc": (
        2,
        "main comparison, UBC Fashion",
        ("ssim", "lpips", "fid", "fvd"),
        [
            ("teacher", 20, {"ssim": 0.908, "lpips": 0.067, "fid": 16.01, "fvd": 88.06}),
            ("referencelcm", 2, {"ssim": 0.890, "lpips": 0.069, "fid": 17.16, "fvd": 94.26}),
            ("student", 2, {"ssim": 0.908, "lpips": 0.066, "fid": 16.92, "fvd": 87.45}),
        ],
    ),
    "tiktok_low_steps": (
        3,
        "the teacher at low steps against CoSeC-LCD at 2, TikTok",
        ("ssim", "lpips", "fid", "fvd", "fid_vid"),
        [
            ("teacher", 2, {"ssim": 0.691, "lpips": 0.290, "fid": 81.41, "fvd": 408.20, "fid_vid": 45.65}),
            ("teacher", 4, {"ssim": 0.707, "lpips": 0.281, "fid": 48.25, "fvd": 313.34, "fid_vid": 37.02}),
            ("teacher", 6, {"ssim": 0.742, "lpips": 0.267, "fid": 35.18, "fvd": 209.67, "fid_vid": 26.91}),
            ("teacher", 8, {"ssim": 0.759, "lpips": 0.258, "fid": 32.68, "fvd": 192.66, "fid_vid": 23.54}),
            ("student", 2, {"ssim": 0.769, "lpips": 0.253, "fid": 29.13, "fvd": 181.72, "fid_vid": 21.01}),
        ],
    ),
    "tiktok_ablation": (
        4,
        "ablation ladder, TikTok (each row adds to the previous)",
        ("ssim", "lpips", "fid", "fvd"),
        [
            ("referencelcm", 2, {"ssim": 0.766, "lpips": 0.259, "fid": 32.11, "fvd": 203.37}),
            ("eta", 2, {"ssim": 0.768, "lpips": 0.256, "fid": 30.29, "fvd": 193.85}),
            ("eta_cons", 2, {"ssim": 0.770, "lpips": 0.254, "fid": 29.59, "fvd": 189.36}),
            ("eta_cons_tmp", 2, {"ssim": 0.769, "lpips": 0.253, "fid": 29.13, "fvd": 181.72}),
        ],
    ),
    "wild_tiktok": (
        5,
        "generalisation to the unseen Wild-TikTok",
        ("ssim", "lpips", "fvd", "fid_vid"),
        [
            ("teacher", 20, {"ssim": 0.764, "lpips": 0.249, "fvd": 173.01, "fid_vid": 18.43}),
            ("teacher", 1, {"ssim": 0.605, "lpips": 0.381, "fvd": 562.20, "fid_vid": 84.02}),
            ("student", 1, {"ssim": 0.720, "lpips": 0.292, "fvd": 325.84, "fid_vid": 38.33}),
            ("teacher", 2, {"ssim": 0.641, "lpips": 0.344, "fvd": 495.01, "fid_vid": 66.95}),
            ("student", 2, {"ssim": 0.732, "lpips": 0.274, "fvd": 198.43, "fid_vid": 22.51}),
            ("teacher", 4, {"ssim": 0.707, "lpips": 0.305, "fvd": 305.23, "fid_vid": 35.75}),
            ("student", 4, {"ssim": 0.739, "lpips": 0.268, "fvd": 192.53, "fid_vid": 19.58}),
        ],
    ),
}
