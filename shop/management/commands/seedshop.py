from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from dbtools.management.commands._common import progress_bar
from shop.seed import flush_shop, seed_shop, shop_is_empty


class Command(BaseCommand):
    help = "Fill the demo shop with deterministic, realistic data."

    def add_arguments(self, parser):
        parser.add_argument(
            "--rows",
            type=int,
            default=10_000,
            help="About how many rows in all (default: %(default)s).",
        )
        parser.add_argument(
            "--scale", type=float, help="Shorthand: --scale 2 means --rows 2000000."
        )
        parser.add_argument(
            "--seed", type=int, default=42, help="Random seed (default: %(default)s)."
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--flush", action="store_true", help="Delete existing shop rows first.")

    def handle(self, *args, **options):
        rows = int(options["scale"] * 1_000_000) if options["scale"] else options["rows"]
        if rows < 100:
            raise CommandError("--rows must be at least 100.")
        using = options["database"]
        if options["flush"]:
            flush_shop(using)
        elif not shop_is_empty(using):
            raise CommandError("The shop already has data. Run again with --flush to replace it.")
        bar = progress_bar(self, options["verbosity"])
        try:
            counts = seed_shop(rows, seed=options["seed"], using=using, progress=bar)
        finally:
            if bar:
                bar.clear()
        if options["verbosity"] >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Seeded {sum(counts.values()):,} rows in {len(counts)} shop tables (seed {options['seed']})."
                )
            )
