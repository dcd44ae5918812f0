"""Golden tags: the original script's tags for fixture trees, reproduced exactly.

The table was computed once by running the original on each case of
tests/fixtures.py (see tests/reference_vectors.py); it is data, not a rerun.
"""

from __future__ import annotations

import os

from get_docker_image import TAG_PREFIX, ContentDigest, compute_tag
from tests.fixtures import GOLDEN_CASES, Checkout
from tests.helpers import ScratchDirTestCase, run_main

EXPECTED_TAGS = {
    "empty context": "image_content_digest_46bcc42d7c5a2d9c468a49d039c9410ff58d4cd06c6e19c81fae5965b49ff6e8",
    "nested directories": "image_content_digest_920f332f264b0f3fc70f87f9614d601f9140dbfd2f3d51903e0c5c4b8265d03c",
    "file and directory modes": "image_content_digest_d5c9bd0d4df1dbca0b3c88d25d27c4152118bc46d1e965ecbf0dd729503120b9",
    "file sizes around the 8 KiB read size": "image_content_digest_65291f3cde558ec2230b4e43d2d819450ed4e59144564a7e679a588fbe5a0f40",
    "large files across read chunks": "image_content_digest_5da54eb26de0fe4ba1dd01bba361b6b18cfd0d770844c8ef0258350964be917a",
    "names with spaces and non-ASCII": "image_content_digest_99419cb8ae72af2eed30bac307b6a08b58de15e5edb8e7307c8cd6027b651e59",
    "names whose order is tricky": "image_content_digest_0e70b9362614ff660b2f1a6e289476181e7b21219ee7d680592cd1e6309da0c4",
    "a/b directory against a.b file": "image_content_digest_c3e9229982c6de9fd293b7c8a19f677273c17b28398cdf44a7220f92a842a51e",
    "Dockerfile inside the context": "image_content_digest_0e0e2adb70b7ace771f4e90e93b368f15689da9d024340df74491b46c70220d3",
    "Dockerfile outside the context, executable": "image_content_digest_19da4324d4ab8034e87044ef5e9593c88ac5d00a129c96c969e7f379b1df62ba",
    "context spelled ./ctx": "image_content_digest_d45dc52f23845c3ed26a1698ba86d6fd01adeb1cce02aae52ae7f062e45aee9d",
    "context with a trailing slash": "image_content_digest_e35063d0d06eee7638bc1084c8eca5c9e10c3f803b0f30c5fb998d8f10b0eacf",
    "context given as an absolute path": "image_content_digest_a182bf2064d8f9352a0d488cf4d7623aa92f1afcc25029366bbdf3320b53b463",
    "context given as . (the current directory)": "image_content_digest_4005351e3fe0c33d05768f2e81d83387a403623e24c19bc4ba61d47ff3773ae4",
    "symlink to a file": "image_content_digest_d6914070244d7e487c869b79096006dbfdaa2c784b92066d81d71a6686102420",
    "symlink to a directory": "image_content_digest_6be1029d438938af5fc0dda2737ae3b49387609658d60f739bc5a5a741a6b4d8",
    "build args with quotes and repeated spaces": "image_content_digest_a59c4f8a4ac4a7ef75e81559674d143015bfcef04837ec4c5183c515548497ec",
    "build args with non-ASCII text": "image_content_digest_4ac8244a399b3a57045bdcee4e79dd19e1ca7d35e016f911ef5c07bfb369848a",
    "FIFO skipped without opening": "image_content_digest_ad110e28ab0f17053a7232f2d81767b329f708fef482a779881ad7f43d817546",
    "read-only directory": "image_content_digest_d64b2477c0619b52e9c1d499b8c50463bd4ea49b9126b02be4214ec6d442b7ce",
}


class GoldenTagTest(ScratchDirTestCase):
    def test_table_covers_every_case(self) -> None:
        self.assertEqual([case.name for case in GOLDEN_CASES], list(EXPECTED_TAGS))
        self.assertEqual(len(set(EXPECTED_TAGS.values())), len(EXPECTED_TAGS))

    def test_print_image_name_gives_the_original_tag(self) -> None:
        for case in GOLDEN_CASES:
            with self.subTest(case.name):
                case_root = os.path.join(self.root, str(GOLDEN_CASES.index(case)))
                os.mkdir(case_root)
                checkout = Checkout(case_root, case)
                os.chdir(checkout.cwd)
                argv = [*case.argv(), "--container-registry", "myreg", "--repository", "repo"]
                result = run_main([*argv, "--print-image-name"])
                expected = f"myreg.azurecr.io/repo:{EXPECTED_TAGS[case.name]}\n"
                self.assertEqual((result.status, result.stdout), (0, expected))
                # Only the warnings about links that make tags vary by runner.
                for message in result.log_messages():
                    self.assertIn("[WARNING] - A ", message)
                    self.assertIn("--hash-mode docker", message)

    def test_compute_tag_gives_the_original_tag(self) -> None:
        case = GOLDEN_CASES[3]  # file sizes around the 8 KiB read size
        os.chdir(Checkout(self.root, case).cwd)
        tag = compute_tag(case.build_args, case.dockerfile, case.context)
        self.assertEqual(tag, EXPECTED_TAGS[case.name])

    def test_read_sizes_and_read_ahead_do_not_change_tags(self) -> None:
        """Chunk boundaries anywhere, every file read in chunks, threaded reads."""
        with self.assertLogs("get_docker_image", "DEBUG") as logs:  # off the console
            self.check_read_sizes()
        # Only the warnings about links that make tags vary by runner.
        for record in logs.records:
            self.assertEqual(record.levelname, "WARNING")
            self.assertRegex(record.getMessage(), r"^A .*--hash-mode docker")

    def check_read_sizes(self) -> None:
        for number, case in enumerate(GOLDEN_CASES):
            case_root = os.path.join(self.root, str(number))
            os.mkdir(case_root)
            os.chdir(Checkout(case_root, case).cwd)
            # (chunk size, read-ahead from, small files below)
            for chunk, read_ahead, small in (
                (7, 10**9, 0),
                (4096, 0, 0),
                (8192, 16384, 8192),
                (7, 10**9, 10**9),
            ):
                with self.subTest(case.name, sizes=(chunk, read_ahead, small)):
                    digest = ContentDigest(
                        chunk_size=chunk, read_ahead_min_size=read_ahead, small_file_size=small
                    )
                    digest.add_text(case.build_args.encode())
                    digest.add_dockerfile(case.dockerfile.encode())
                    digest.add_context(case.context.encode())
                    self.assertEqual(TAG_PREFIX + digest.hexdigest(), EXPECTED_TAGS[case.name])
