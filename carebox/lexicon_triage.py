"""Word lists for triage (service terms, outage, urgency, spam, question cues) and the EN/FR word vote."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(text.split())


# Service term -> normalised cluster key. Terms of two or three words match adjacent tokens.
SERVICES: dict[str, str] = {
    # network
    "network": "network", "signal": "network", "coverage": "network", "reception": "network",
    "réseau": "network", "reseau": "network", "mobile data": "data", "data": "data",
    "données": "data", "4g": "4g", "lte": "4g", "5g": "5g", "3g": "3g",
    # fixed internet
    "internet": "internet", "broadband": "internet", "connection": "internet",
    "connexion": "internet", "box": "internet", "livebox": "internet", "router": "internet",
    "wifi": "wifi", "wi-fi": "wifi", "fibre": "fibre", "fiber": "fibre", "adsl": "internet",
    # apps and sites
    "app": "app", "apps": "app", "application": "app", "appli": "app", "website": "site",
    "site": "site", "web site": "site", "site web": "site", "portal": "site",
    # money
    "payment": "payment", "payments": "payment", "paiement": "payment", "paiements": "payment",
    "card": "payment", "carte": "payment", "cb": "payment", "checkout": "payment",
    "transfer": "payment", "virement": "payment", "atm": "atm", "distributeur": "atm",
    # access
    "login": "login", "log in": "login", "sign in": "login", "password": "login",
    "identifiant": "login", "mot de passe": "login", "me connecter": "login",
    "se connecter": "login", "sign on": "login", "account": "login", "compte": "login",
    # communication services
    "calls": "calls", "call": "calls", "appels": "calls", "appel": "calls",
    "ligne": "calls", "line": "calls", "sms": "sms", "texts": "sms",
    "email": "email", "emails": "email", "mail": "email", "mails": "email",
    "messagerie": "email", "tv": "tv", "télé": "tv", "streaming": "tv", "décodeur": "tv",
    # utilities and delivery
    "power": "power", "electricity": "power", "courant": "power", "électricité": "power",
    "delivery": "delivery", "livraison": "delivery", "server": "server", "servers": "server",
    "serveur": "server", "serveurs": "server",
}

# Words that say "a service is down" on their own (with a service term they make an outage).
OUTAGE_WORDS = _words(
    "outage outages down offline crashed crashing crash crashes broken dead unreachable "
    "disconnected disconnecting dropping dropped buggy glitch glitching unavailable panne "
    "pannes coupure coupé coupée coupures hs plante planté bug bugue beugue inaccessible "
    "indisponible injoignable"
)
# Outage words strong enough to mean an outage even without a service term.
OUTAGE_NOUNS = frozenset(("outage", "outages", "panne", "pannes", "coupure", "coupures"))

URGENCY = _words(
    "urgent urgently asap emergency immediately critical stranded hospital medical deadline "
    "lawyer legal ombudsman regulator court journalist press urgence immédiatement vite "
    "hôpital hopital médical avocat justice médiateur mediateur tribunal arcep"
)

SPAM_PHRASES: tuple[str, ...] = (
    "follow back", "followback", "free followers", "giveaway", "bitcoin", "crypto", "forex",
    "onlyfans", "promo code", "discount code", "click here", "check out my", "check my bio",
    "dm me for", "earn $", "make money", "investment opportunity", "free iphone", "casino",
    "concours", "gagnez", "cliquez ici", "abonnez-vous", "code promo", "gagner de l'argent",
)

QUESTION_STARTS = _words(
    "how what when where why which who can could is are does do will would should any comment "
    "quand pourquoi combien quel quelle quels quelles est-ce peut-on pouvez puis-je où ou"
)

# Words that say "I am asking something" wherever they stand in the message.
QUESTION_WORDS = _words("question questions query enquiry inquiry wondering renseignement renseignements")

THANKS = _words(
    "thanks thank thx thnx ty kudos appreciate appreciated grateful merci remercie bravo "
    "félicitations chapeau"
)

# Very short texts: a few words settle the language where character n-grams cannot.
SHORT_EN = _words(
    "thanks thank thx still down not the is my you please again no help working why hello hi "
    "ok great broken fixed yes outage"
)
SHORT_FR = _words(
    "merci bonjour pas de le la est plus toujours réseau panne svp encore mais ça c'est je "
    "j'ai vous marche rien nul hs coupure oui non"
)

# Frequent function words: two or more on one side settle EN vs FR without the n-gram model.
STOP_EN = _words(
    "the and is are was my your you it this that to of for with on in at have has not no "
    "since still again why can do does i me we our they be been will just from a an am i'm "
    "it's don't can't i've you're what how when where who there their then than so if or but "
    "by as up out about all get got like one"
)
STOP_FR = _words(
    "le la les des du de et est sont mon ma mes votre vous je j'ai c'est il elle on nous pas "
    "plus pour avec sur dans une un au aux ce cette depuis toujours encore ne qui que à "
    "est-ce qu'il quoi mais ou donc car ni sa son ses leur leurs y en été être avoir fait "
    "très bien tout rien"
) - STOP_EN
# Letters that English words almost never carry: each text having one counts as a French cue.
FR_LETTERS = frozenset("éèàçêùâîôûœëï")


def vote_en_fr(text: str, words: set[str]) -> str | None:
    """EN or FR from function words and accents when they clearly agree; None to ask the model."""
    if len(words) <= 3:  # "merci !", "still down": the n-gram model is unreliable this short
        en = len(SHORT_EN.intersection(words))
        fr = len(SHORT_FR.intersection(words))
        if en != fr:
            return "en" if en > fr else "fr"
    en = len(STOP_EN.intersection(words))
    fr = len(STOP_FR.intersection(words)) + (not text.isascii() and not FR_LETTERS.isdisjoint(text.lower()))
    if en >= 1 and en >= 2 * fr + 1:
        return "en"
    if fr >= 1 and fr >= 2 * en + 1:
        return "fr"
    return None
