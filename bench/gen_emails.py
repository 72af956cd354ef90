"""Deterministic generator of a realistic email list CSV: `id,email,first_name,city`.

    .venv/bin/python bench/gen_emails.py --rows 1000000 [--seed 7]   # writes bench/out/

Shape (approximate shares of rows):

* ~50% popular providers (gmail.com, yahoo.com, outlook.com, hotmail.com, ...), a few
  disposable and typo domains (mailinator.com, gmial.com, hotmial.com);
* ~45% on ~2,950 company-like domains (.com .net .org .de .co.uk .io .fr .nl), Zipf-weighted;
* ~0.6% IDN domains (münchen.de, bücher.de, ...; some in xn-- form), ~0.3% Unicode local parts;
* local parts: first.last, firstlast, f.last, initials+digits, first_last, plus-tags,
  role names, some Capitalised / UPPER CASE, some upper-case domains, some surrounding blanks;
* ~5% invalid: missing @, double @, double dots, leading/trailing dots, spaces, bad domains
  (localhost, a.test, no TLD, foo_bar.com, -x.com, domain literals, .invalid, .local),
  local parts over 64 characters, addresses over 254, display names, mailto:, quoted local
  parts, trailing ';', empty cells;
* ~3% deliberate duplicates of earlier rows (same string, or different case); with the
  natural collisions (info@gmail.com, jd1987@yahoo.com...) ~13% of rows repeat an address.

The file is cached as bench/out/emails_<rows>_s<seed>_v<VERSION>.csv.
"""

from __future__ import annotations

import argparse
import csv
import random
from itertools import accumulate
from pathlib import Path

VERSION = 1

FIRST = """james mary john patricia robert jennifer michael linda william elizabeth david barbara
richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew
betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna joshua
michelle kenneth carol kevin amanda brian dorothy george melissa timothy deborah ronald
stephanie edward rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary amy
nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin emma scott nicole
brandon helen benjamin samantha samuel katherine gregory christine alexander debra frank rachel
patrick carolyn raymond janet jack catherine dennis maria jerry heather tyler diane aaron ruth
jose julie adam olivia nathan joyce henry virginia lukas anna leon sophie felix marie jonas
lena paul hannah elias mia noah emilia luca lea finn clara ben laura max lina moritz ida
hugo louise lucas chloe arthur alice jules camille louis ines liam sofia matteo giulia
lorenzo chiara sven ingrid lars astrid jan anke pieter femke daan sanne wei li yuki haruto
aarav priya arjun ananya mohammed fatima omar aisha ivan olga dmitri natalia""".split()

LAST = """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez
lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white
harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen
hill flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez
phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy
cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox
ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez
castillo sanders patel myers long ross foster jimenez mueller schmidt schneider fischer weber
meyer wagner becker schulz hoffmann koch richter klein wolf schroeder neumann schwarz zimmermann
braun krueger hofmann hartmann lange dubois durand lefebvre moreau laurent simon michel
rossi russo ferrari esposito bianchi romano colombo ricci jansen devries bakker visser smit
andersson johansson karlsson nilsson eriksson larsen hansen nielsen wang zhang liu chen yang
tanaka suzuki sato kumar sharma singh ivanov petrov""".split()

CITIES = """London|Berlin|Paris|New York|Los Angeles|Chicago|Houston|Phoenix|Philadelphia|
San Antonio|San Diego|Dallas|Austin|Munich|Hamburg|Cologne|Frankfurt|Stuttgart|Düsseldorf|
Leipzig|Dresden|Vienna|Zürich|Geneva|Amsterdam|Rotterdam|Brussels|Antwerp|Madrid|Barcelona|
Lisbon|Porto|Rome|Milan|Naples|Turin|Stockholm|Oslo|Copenhagen|Helsinki|Dublin|Manchester|
Birmingham|Glasgow|Edinburgh|Leeds|Liverpool|Bristol|Toronto|Montréal|Vancouver|Sydney|
Melbourne|Auckland|Tokyo|Osaka|Seoul|Singapore|Mumbai|Bangalore|São Paulo|Mexico City|
Washington, D.C.|Portland, OR|Portland, ME|Kraków|Łódź|Malmö|Reykjavík|Zagreb|""".replace("\n", "")
CITIES_LIST = [c for c in CITIES.split("|") if c] + [""]

POPULAR = [  # (domain, weight in % of rows)
    ("gmail.com", 20.0),
    ("yahoo.com", 6.0),
    ("hotmail.com", 5.0),
    ("outlook.com", 4.0),
    ("icloud.com", 2.0),
    ("aol.com", 1.5),
    ("gmx.de", 1.5),
    ("web.de", 1.5),
    ("live.com", 1.0),
    ("t-online.de", 0.7),
    ("msn.com", 0.5),
    ("comcast.net", 0.5),
    ("yahoo.co.uk", 0.5),
    ("hotmail.co.uk", 0.5),
    ("protonmail.com", 0.5),
    ("orange.fr", 0.5),
    ("mail.ru", 0.5),
    ("qq.com", 0.5),
    ("yandex.ru", 0.3),
    ("btinternet.com", 0.3),
    ("gmx.net", 0.3),
    ("me.com", 0.3),
    ("free.fr", 0.3),
    ("googlemail.com", 0.2),
    ("proton.me", 0.2),
    ("mailinator.com", 0.15),
    ("guerrillamail.com", 0.1),
    ("10minutemail.com", 0.05),
    ("gmial.com", 0.1),
    ("hotmial.com", 0.05),
    ("yaho.com", 0.05),
    ("gmail.con", 0.05),
]
POPULAR_SHARE = sum(w for _, w in POPULAR)  # ~49.8 %

IDN = [
    "münchen.de",
    "bücher.de",
    "köln.de",
    "düsseldorf.de",
    "zürich.ch",
    "straße.de",
    "café.fr",
    "españa.es",
    "müller-bau.de",
    "größe.de",
    "ñandú.com.ar",
    "привет.рф",
    "例え.jp",
    "xn--mnchen-3ya.de",
    "xn--bcher-kva.de",
    "xn--caf-dma.fr",
]

WORDS = """alpha apex arc atlas aurora axis beacon birch blue bold bright brook cedar
cloud coast core crest crown delta drift eagle echo edge ember evergreen falcon field
fjord flint forge fox frontier gate glacier globe gold granite green grove harbor hawk
haven helix horizon hub iron island jade keystone lake lantern laser leaf light lime
linden lotus lumen maple marble meadow mesa metro mint monarch moss nexus nimbus noble
north nova oak ocean olive onyx orbit orchid peak pine pioneer pixel plaza polar prime
pulse quartz quest rapid raven red ridge river rock royal sage salt sand sierra silver
sky slate solar spark spring spruce star steel stone storm summit sun swift terra tide
timber titan trail true union urban valley vector velvet vista wave west willow wind
wolf zen zenith""".split()
SUFFIXES = """tech labs systems group media solutions consulting partners digital works
software logistics capital health energy design studio foods motors bau gmbh ventures
analytics networks cloud data shop store legal finance realty""".split()
TLDS = [
    (".com", 55),
    (".net", 10),
    (".org", 9),
    (".de", 10),
    (".co.uk", 8),
    (".io", 4),
    (".fr", 2),
    (".nl", 2),
]

ROLES = [
    "info",
    "sales",
    "support",
    "admin",
    "contact",
    "office",
    "hr",
    "billing",
    "postmaster",
    "abuse",
    "noreply",
    "marketing",
    "team",
    "hello",
    "jobs",
    "Postmaster",
    "INFO",
    "Abuse",
]
TAGS = ["news", "shop", "promo", "2023", "spam", "amazon", "work", "list"]
UNICODE_LOCALS = [
    "josé",
    "müller",
    "françois",
    "zoë",
    "søren",
    "björn",
    "łukasz",
    "renée",
    "jürgen",
    "ñoño",
    "андрей",
    "田中",
]


def _company_domains(rng: random.Random, n: int) -> list[str]:
    tlds, tw = zip(*TLDS, strict=True)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        shape = rng.random()
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        if shape < 0.35:
            name = f"{a}{b}"
        elif shape < 0.6:
            name = f"{a}-{rng.choice(SUFFIXES)}"
        elif shape < 0.8:
            name = f"{a}{rng.choice(SUFFIXES)}"
        elif shape < 0.9:
            name = f"{a}-{b}-{rng.choice(SUFFIXES)}"
        else:
            name = f"{a}{rng.randint(1, 999)}"
        dom = name + rng.choices(tlds, tw)[0]
        if rng.random() < 0.03:
            dom = "mail." + dom
        if dom not in seen:
            seen.add(dom)
            out.append(dom)
    return out


class _Gen:
    def __init__(self, seed: int) -> None:
        rng = self.rng = random.Random(seed)
        self.companies = _company_domains(rng, 2950)
        zipf = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self.companies))]
        self.company_cum = list(accumulate(zipf))
        pop, pw = zip(*POPULAR, strict=True)
        self.popular, self.popular_cum = list(pop), list(accumulate(pw))

    def domain(self) -> str:
        rng = self.rng
        r = rng.random() * 100
        if r < POPULAR_SHARE:
            return rng.choices(self.popular, cum_weights=self.popular_cum)[0]
        if r < POPULAR_SHARE + 0.6:
            return rng.choice(IDN)
        return rng.choices(self.companies, cum_weights=self.company_cum)[0]

    def local(self, first: str, last: str) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.33:
            loc = f"{first}.{last}"
        elif r < 0.43:
            loc = f"{first}{last}"
        elif r < 0.53:
            loc = f"{first[0]}.{last}"
        elif r < 0.62:
            loc = f"{first[0]}{last}{rng.randint(1, 99)}"
        elif r < 0.71:  # initials + digits
            digits = rng.randint(1950, 2010) if rng.random() < 0.5 else rng.randint(1, 9999)
            loc = f"{first[0]}{last[0]}{digits}"
        elif r < 0.76:
            loc = f"{first}_{last}"
        elif r < 0.80:
            loc = f"{first}-{last}"
        elif r < 0.86:
            loc = (
                f"{first}.{last}+{rng.choice(TAGS)}"
                if rng.random() < 0.5
                else f"{first}+{rng.choice(TAGS)}"
            )
        elif r < 0.93:
            loc = f"{first}{rng.randint(1, 999)}"
        elif r < 0.97:
            loc = rng.choice(ROLES)
            return loc
        elif r < 0.973:
            loc = rng.choice(UNICODE_LOCALS) + (f".{last}" if rng.random() < 0.5 else "")
        else:
            loc = f"{last}.{first}"
        c = rng.random()
        if c < 0.08:
            loc = ".".join(p.capitalize() for p in loc.split("."))
        elif c < 0.10:
            loc = loc.upper()
        return loc

    def valid(self, first: str, last: str) -> str:
        rng = self.rng
        domain = self.domain()
        if rng.random() < 0.02:
            domain = domain.upper() if rng.random() < 0.5 else domain.capitalize()
        addr = f"{self.local(first, last)}@{domain}"
        if rng.random() < 0.005:
            addr = rng.choice([" ", "  ", "\t"]) + addr if rng.random() < 0.5 else addr + " "
        return addr

    def invalid(self, first: str, last: str) -> str:
        rng = self.rng
        loc, dom = f"{first}.{last}", self.domain()
        kind = rng.randrange(24)
        if kind == 0:
            return f"{loc}{dom}"  # missing @
        if kind == 1:
            return f"{loc}@@{dom}"
        if kind == 2:
            return f"{first}..{last}@{dom}"
        if kind == 3:
            return f".{loc}@{dom}"
        if kind == 4:
            return f"{loc}.@{dom}"
        if kind == 5:
            return f"{first} {last}@{dom}"
        if kind == 6:
            return f"{loc}@{dom.replace('.', ' .', 1)}"
        if kind == 7:
            return f"{loc}@localhost"
        if kind == 8:
            return f"{loc}@a.test"
        if kind == 9:
            return f"{loc}@{dom.split('.')[0]}"  # no TLD
        if kind == 10:
            return f"{loc}@{dom.replace('.', '..', 1)}"
        if kind == 11:
            return f"{loc}@{first}_{last}.com"
        if kind == 12:
            return f"{loc}@-{dom}"
        if kind == 13:
            return f"{loc}@[192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}]"
        if kind == 14:
            return f"{loc}@{first}.{rng.choice(['invalid', 'local', 'localhost', 'onion', 'test'])}"
        if kind == 15:
            return f"{(loc + '.') * 6}{rng.randint(1000, 9999)}@{dom}"  # local part > 64
        if kind == 16:
            return f"{loc}@{'.'.join([rng.choice(WORDS) + rng.choice(WORDS)] * 30)}.com"  # > 254
        if kind == 17:
            return f"{first.capitalize()} {last.capitalize()} <{loc}@{dom}>"
        if kind == 18:
            return f"mailto:{loc}@{dom}"
        if kind == 19:
            return f'"{first} {last}"@{dom}'
        if kind == 20:
            return f"{loc}@{dom};"
        if kind == 21:
            return ""
        if kind == 22:
            return f"{loc}@{dom},{first}@{dom}"
        a, b, c, d = (
            rng.randint(1, 255),
            rng.randint(0, 255),
            rng.randint(0, 255),
            rng.randint(0, 255),
        )
        return f"{loc}@{a}.{b}.{c}.{d}"


def csv_path(out_dir: Path, rows: int, seed: int) -> Path:
    return out_dir / f"emails_{rows}_s{seed}_v{VERSION}.csv"


def generate_csv(out_dir: Path, rows: int, seed: int = 7, force: bool = False) -> tuple[Path, bool]:
    """Write (unless cached) the CSV; return its path and whether it was generated now."""
    path = csv_path(out_dir, rows, seed)
    if path.is_file() and not force:
        return path, False
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Gen(seed)
    rng = gen.rng
    emails: list[str] = []
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "email", "first_name", "city"])
        batch = []
        for i in range(1, rows + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            r = rng.random()
            if r < 0.05:
                email = gen.invalid(first, last)
            elif r < 0.08 and emails:
                email = rng.choice(emails)  # duplicate
                if rng.random() < 0.3:
                    email = email.upper() if rng.random() < 0.3 else email.capitalize()
            else:
                email = gen.valid(first, last)
            if len(emails) < 200_000:
                emails.append(email)
            elif rng.random() < 0.01:
                emails[rng.randrange(len(emails))] = email
            first_name = first.capitalize() if rng.random() < 0.97 else ""
            batch.append((i, email, first_name, rng.choice(CITIES_LIST)))
            if len(batch) >= 10_000:
                w.writerows(batch)
                batch.clear()
        w.writerows(batch)
    tmp.replace(path)
    return path, True


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    from _common import OUT_DIR

    p, _ = generate_csv(OUT_DIR, a.rows, a.seed, force=True)
    print(p)
