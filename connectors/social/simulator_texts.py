"""Phrase banks (English and French) and the text variety the simulator puts on them."""

from __future__ import annotations

import random

SERVICE_WORDS = {"en": {"payment": "payment"}, "fr": {"payment": "paiement"}}

NEW_KINDS = ("question", "complaint", "praise", "spam")

BANK: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "question": (
            "how do I change {thing} on my account?",
            "is there a way to get a copy of my {doc}?",
            "what time does the shop in {city} open today?",
            "can I keep my number if I switch to the {plan}?",
            "hi, when will the {plan} be available in {city}?",
            "quick question: do you charge for data abroad?",
            "how long does a refund usually take?",
            "I moved to {city}, how do I transfer my contract?",
            "why is my {doc} higher than last month?",
            "do you have a student discount on the {plan}?",
            "where can I find my PUK code?",
            "can someone tell me how to cancel {cancel}?",
            "is the new {device} compatible with your network?",
            "how do I activate roaming before my trip?",
        ),
        "complaint": (
            "been waiting {wait} for a callback, still nothing",
            "charged twice for my {doc} this month, sort it out",
            "third time I call about {thing} and nobody can help",
            "your customer service is a joke honestly",
            "ordered a {device} {wait} ago and it never arrived",
            "I was promised a technician today and nobody came",
            "why do I have to explain my problem to 5 different people",
            "my {doc} is wrong AGAIN, this is unacceptable",
            "cancelled {cancel} last month and you still bill me",
            "the shop in {city} sent me away without even looking",
            "worst customer service I have ever had",
            "your chat bot just loops, I want a human",
            "switched to you last month and regretting it already",
        ),
        "praise": (
            "huge thanks to Sarah at the {city} shop, super helpful",
            "problem fixed in 5 minutes, well done",
            "loving the new {plan}, great value",
            "your support team was brilliant today, thank you",
            "fastest delivery ever for my {device}, impressed",
            "finally a company that answers, thanks",
            "the technician was on time and really nice, cheers",
            "best network I've had, never drops",
        ),
        "spam": (
            "earn $500 a day from home, DM me for details {link}",
            "FREE iPhone giveaway!!! click {link}",
            "follow me and I follow back 100% {link}",
            "crypto signals that actually work, join now {link}",
            "cheap followers, real accounts, {link}",
            "hot singles in {city} {link}",
        ),
        "outage": (
            "is {service} down? nothing works since {since}",
            "{service} not working at all in {city}",
            "no {service} for {wait} now, what is going on",
            "anyone else having {service} problems? totally dead here",
            "{service} down AGAIN, this is the third time this month",
            "can't use {service} since {since}, any ETA?",
            "{service} outage in {city}? nothing is loading",
            "your {service} is broken, I need it for work",
        ),
        "thanks": (
            "thanks!",
            "thanks, that worked",
            "ok cheers",
            "great, thank you",
            "brilliant, sorted now",
            "thx for the quick answer",
        ),
        "still": (
            "still not working",
            "still nothing on my side",
            "did that, still broken",
            "sent you a DM {wait} ago, no answer",
            "no change, still the same problem",
        ),
        "info": (
            "DM sent",
            "sent you my account number in DM",
            "it's on the {device}",
            "since {since}, in {city}",
            "tried restarting, same thing",
        ),
        "reply_outage": (
            "we're aware of an issue affecting {service} and our teams are on it. Sorry for the trouble!",
            "sorry about that! There's a known {service} incident, we'll post updates here.",
            "thanks for letting us know, {service} is being fixed right now. Apologies!",
        ),
        "reply_problem": (
            "sorry to hear that! Can you DM us your account number so we can check?",
            "we're sorry for the trouble. Please send us a DM and we'll look into it.",
            "apologies! Our team is aware and working on it. We'll keep you posted.",
            "sorry about that, could you tell us your postcode by DM?",
        ),
        "reply_question": (
            "hi! You can do that in the app under Account > Settings.",
            "good question! Send us a DM and we'll check it for you.",
            "hi there, all the details are on our help page. Any other question, just ask!",
        ),
        "reply_praise": (
            "thanks so much, we'll pass it on to the team!",
            "that's great to hear, thanks for the kind words!",
        ),
    },
    "fr": {
        "question": (
            "comment je change {thing} sur mon compte ?",
            "est-ce que je peux avoir une copie de ma {doc} ?",
            "la boutique de {city} ouvre à quelle heure aujourd'hui ?",
            "je garde mon numéro si je passe au {plan} ?",
            "bonjour, le {plan} arrive quand à {city} ?",
            "petite question : l'internet à l'étranger c'est payant ?",
            "un remboursement ça prend combien de temps en général ?",
            "j'ai déménagé à {city}, comment je transfère mon contrat ?",
            "pourquoi ma {doc} est plus chère que le mois dernier ?",
            "vous avez une réduction étudiant sur le {plan} ?",
            "où est-ce que je trouve mon code PUK ?",
            "quelqu'un peut me dire comment résilier {cancel} ?",
            "le nouveau {device} est compatible avec votre réseau ?",
        ),
        "complaint": (
            "ça fait {wait} que j'attends d'être rappelé, toujours rien",
            "prélevé deux fois pour ma {doc} ce mois-ci, c'est inadmissible",
            "troisième appel pour {thing} et personne ne sait m'aider",
            "votre service client c'est vraiment n'importe quoi",
            "commandé un {device} il y a {wait} et toujours pas livré",
            "on m'avait promis un technicien aujourd'hui, personne n'est venu",
            "pourquoi je dois réexpliquer mon problème à 5 personnes",
            "ma {doc} est encore fausse, c'est une honte",
            "j'ai résilié {cancel} le mois dernier et vous me facturez encore",
            "la boutique de {city} m'a renvoyé sans même regarder",
            "pire service client de ma vie",
            "votre chatbot tourne en rond, je veux parler à un humain",
        ),
        "praise": (
            "merci à Julie de la boutique de {city}, au top",
            "problème réglé en 5 minutes, bravo",
            "trop content du {plan}, super rapport qualité prix",
            "votre équipe support a été géniale aujourd'hui, merci",
            "livraison ultra rapide pour mon {device}, impressionné",
            "enfin une entreprise qui répond, merci",
            "technicien à l'heure et très sympa, merci",
        ),
        "spam": (
            "gagnez 500€ par jour depuis chez vous, écrivez-moi {link}",
            "iPhone GRATUIT à gagner !!! cliquez ici {link}",
            "abonnez-vous je m'abonne en retour {link}",
            "signaux crypto qui marchent vraiment, rejoignez-nous {link}",
            "followers pas chers, vrais comptes {link}",
        ),
        "outage": (
            "{service} en panne ? plus rien ne marche depuis {since}",
            "plus de {service} du tout à {city}",
            "pas de {service} depuis {wait}, il se passe quoi ?",
            "quelqu'un d'autre a des soucis de {service} ? c'est mort ici",
            "{service} en panne ENCORE, troisième fois ce mois-ci",
            "impossible d'utiliser {service} depuis {since}, une idée de quand ça revient ?",
            "panne {service} à {city} ? rien ne charge",
            "votre {service} ne marche plus, j'en ai besoin pour bosser",
        ),
        "thanks": (
            "merci !",
            "merci, ça marche",
            "super merci",
            "top, merci beaucoup",
            "parfait c'est réglé",
            "merci pour la réponse rapide",
        ),
        "still": (
            "ça ne marche toujours pas",
            "toujours rien de mon côté",
            "fait, toujours en panne",
            "DM envoyé il y a {wait}, pas de réponse",
            "aucun changement, même problème",
        ),
        "info": (
            "DM envoyé",
            "je vous ai envoyé mon numéro client en DM",
            "c'est sur le {device}",
            "depuis {since}, à {city}",
            "j'ai redémarré, pareil",
        ),
        "reply_outage": (
            "un incident {service} est en cours, nos équipes sont dessus. Désolés pour la gêne !",
            "désolés ! Nous avons identifié un souci {service}, on vous tient informé ici.",
            "merci du signalement, le {service} est en cours de rétablissement. Toutes nos excuses !",
        ),
        "reply_problem": (
            "désolés pour ce souci ! Pouvez-vous nous envoyer votre numéro client en DM ?",
            "nous sommes désolés. Envoyez-nous un DM et on regarde ça tout de suite.",
            "toutes nos excuses, nos équipes sont mobilisées. On vous tient au courant.",
            "désolés, pouvez-vous nous indiquer votre code postal en DM ?",
        ),
        "reply_question": (
            "bonjour ! C'est possible dans l'appli, rubrique Compte > Paramètres.",
            "bonne question ! Envoyez-nous un DM et on vérifie pour vous.",
            "bonjour, tout est détaillé sur notre page d'aide. N'hésitez pas si besoin !",
        ),
        "reply_praise": (
            "merci beaucoup, on transmet à l'équipe !",
            "ça fait plaisir, merci pour votre message !",
        ),
    },
}

FILL: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "thing": ("my plan", "my payment card", "my address", "my PIN", "my bank details", "my TV option"),
        "doc": ("bill", "invoice", "contract", "statement"),
        "plan": ("5G plan", "fibre deal", "family plan", "SIM only deal", "unlimited plan"),
        "cancel": ("my contract", "the TV option", "my landline", "the insurance option"),
        "device": ("phone", "router", "TV box", "SIM card"),
        "wait": ("2 hours", "3 days", "a week", "45 minutes", "two weeks", "all morning"),
        "since": ("this morning", "an hour", "8am", "yesterday evening", "lunchtime"),
    },
    "fr": {
        "thing": ("mon forfait", "la carte bancaire", "mon adresse", "mon code PIN", "l'option TV"),
        "doc": ("facture", "commande", "dernière facture", "mensualité"),
        "plan": ("forfait 5G", "forfait fibre", "forfait famille", "forfait sans engagement"),
        "cancel": ("mon contrat", "l'option TV", "ma ligne fixe", "l'assurance mobile"),
        "device": ("téléphone", "box", "décodeur", "carte SIM"),
        "wait": ("2 heures", "3 jours", "une semaine", "45 minutes", "15 jours", "ce matin"),
        "since": ("ce matin", "une heure", "8h", "hier soir", "midi"),
    },
}

CITIES = (
    "Paris",
    "Lyon",
    "Marseille",
    "Toulouse",
    "Lille",
    "Bordeaux",
    "Nantes",
    "Strasbourg",
    "Rennes",
    "Nice",
)
HASHTAGS = {
    "en": ("#fail", "#customerservice", "#help", "#annoyed", "#outage", "#notimpressed"),
    "fr": ("#panne", "#serviceclient", "#colère", "#nul", "#aide", "#inadmissible"),
}
EMOJI = {
    "angry": ("😡", "🤬", "😤", "🙄", "👎", "💩"),
    "happy": ("🙏", "😍", "👍", "❤️", "🎉", "😊"),
    "neutral": ("🤔", "😅", "📱", "🙂"),
}
STRETCH = {
    "en": ("so", "please", "why", "help", "again", "really", "love", "thanks", "nothing"),
    "fr": ("svp", "merci", "trop", "vraiment", "encore", "nul", "rien", "pourquoi"),
}
LINKS = ("bit.ly/3xY{n}", "tinyurl.com/win{n}", "t.co/a{n}Zq", "cutt.ly/g{n}")
_MOOD = {"complaint": "angry", "outage": "angry", "still": "angry", "praise": "happy", "thanks": "happy"}
_TAG_PROB = {"outage": 0.35, "complaint": 0.25, "praise": 0.1, "spam": 0.0}


def service_word(service: str, lang: str) -> str:
    """The word a customer writing in `lang` uses for `service` ("payment" is "paiement" in French)."""
    return SERVICE_WORDS.get(lang, {}).get(service, service)


class _Fill(dict[str, str]):
    """Draws a placeholder's value only when the template uses it."""

    def __init__(self, lang: str, rng: random.Random) -> None:
        super().__init__()
        self.lang, self.rng = lang, rng

    def __missing__(self, key: str) -> str:
        if key == "city":
            return self.rng.choice(CITIES)
        if key == "link":
            return self.rng.choice(LINKS).format(n=self.rng.randrange(10, 99))
        return self.rng.choice(FILL[self.lang][key])


def _fill(template: str, lang: str, rng: random.Random, service: str | None, city: str | None) -> str:
    fill = _Fill(lang, rng)
    if city:
        fill["city"] = city
    fill["service"] = service_word(service, lang) if service else "internet"
    return template.format_map(fill)


def _stretch(text: str, lang: str, rng: random.Random) -> str:
    """Elongate one emphatic word: "so" -> "soooo", "merci" -> "merciii"."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if w.lower().strip("!?,.") in STRETCH[lang]]
    if not spots:
        return text
    i = rng.choice(spots)
    word = words[i].rstrip("!?,.")
    tail = words[i][len(word) :]
    words[i] = word + word[-1] * rng.randint(2, 5) + tail
    return " ".join(words)


def _typo(text: str, rng: random.Random, protect: frozenset[str]) -> str:
    """Swap or drop one letter in one ordinary word, never in a protected term."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha() and w.lower() not in protect]
    if not spots:
        return text
    i = rng.choice(spots)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    if rng.random() < 0.5:
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    else:
        words[i] = w[:j] + w[j + 1 :]
    return " ".join(words)


def decorate(text: str, kind: str, lang: str, rng: random.Random, protect: frozenset[str]) -> str:
    """Put the variety of real posts on a clean sentence: typos, elongations, caps, emoji, hashtags."""
    if rng.random() < 0.15:
        text = _typo(text, rng, protect)
    if rng.random() < 0.2:
        text = _stretch(text, lang, rng)
    if kind in ("complaint", "outage", "still") and rng.random() < 0.1:
        text = text.upper()
    elif rng.random() < 0.3 and not text[1:2].isupper():
        text = text[:1].lower() + text[1:]
    elif text[:1].islower():
        text = text[:1].upper() + text[1:]
    if kind in ("complaint", "outage") and rng.random() < 0.25:
        text = text.rstrip("?.!") + rng.choice(("!!", "!!!", "?!", " ..."))
    if rng.random() < _TAG_PROB.get(kind, 0.05):
        text += " " + rng.choice(HASHTAGS[lang])
    mood = _MOOD.get(kind, "neutral")
    if kind != "spam" and rng.random() < 0.3:
        text += " " + rng.choice(EMOJI[mood]) * rng.choice((1, 1, 1, 2, 3))
    return text


def customer_text(
    kind: str,
    lang: str,
    rng: random.Random,
    *,
    brand: str,
    service: str | None = None,
    city: str | None = None,
    reply: bool = False,
) -> str:
    """A customer's post of `kind` mentioning @brand; `reply` when it answers the brand in a thread."""
    text = _fill(rng.choice(BANK[lang][kind]), lang, rng, service, city)
    protect = frozenset({brand.lower(), (city or "").lower(), service_word(service or "", lang).lower()})
    text = decorate(text, kind, lang, rng, protect)
    handle = "@" + brand
    if reply or rng.random() < 0.7:
        return f"{handle} {text}"
    if kind == "outage" and rng.random() < 0.5:
        return f"{text} {handle} #{brand}"
    return f"{text} {handle}"


def brand_text(
    kind: str,
    lang: str,
    rng: random.Random,
    *,
    customer_handle: str,
    signature: str,
    service: str | None = None,
) -> str:
    """The brand's reply to a customer post of `kind` (about `service` during an outage), signed."""
    if service and kind in ("question", "complaint"):
        bank = "reply_outage"
    elif kind in ("praise", "thanks"):
        bank = "reply_praise"
    else:
        bank = "reply_question" if kind == "question" else "reply_problem"
    text = rng.choice(BANK[lang][bank]).format(service=service_word(service or "", lang))
    return f"@{customer_handle} {text[:1].upper()}{text[1:]} ^{signature}"
