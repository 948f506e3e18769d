"""Care vocabulary for the sentiment layer: words, phrases, intensifiers, words made neutral (EN, FR).

Chosen by hand as general care and social-media vocabulary, never copied from evaluation texts.
"""

from __future__ import annotations

EN_WORDS: dict[str, float] = {
    # service failure
    "outage": -0.6, "outages": -0.6, "down": -0.4, "broken": -0.5, "crash": -0.5,
    "crashed": -0.6, "crashes": -0.5, "crashing": -0.6, "error": -0.4, "errors": -0.4,
    "bug": -0.4, "bugs": -0.4, "buggy": -0.5, "glitch": -0.4, "lag": -0.4, "laggy": -0.5,
    "offline": -0.3, "disconnected": -0.5, "dropped": -0.4, "dropping": -0.4, "fail": -0.5,
    "fails": -0.5, "failing": -0.5, "failed": -0.5, "failure": -0.5, "problem": -0.3,
    "problems": -0.4, "issue": -0.3, "issues": -0.3, "faulty": -0.5, "unusable": -0.7,
    "unreliable": -0.6, "useless": -0.6, "joke": -0.4, "mess": -0.5, "nightmare": -0.8,
    "disaster": -0.7, "fiasco": -0.7, "shambles": -0.7, "unacceptable": -0.8,
    "ridiculous": -0.6, "pathetic": -0.8, "appalling": -0.9, "disgraceful": -0.9,
    "disgusting": -0.9, "incompetent": -0.8, "incompetence": -0.8, "rubbish": -0.7,
    "crap": -0.7, "crappy": -0.7, "sucks": -0.6, "suck": -0.6, "sucked": -0.6,
    # waiting and contact failure
    "waiting": -0.4, "still": -0.1, "fool": -0.6, "troll": -0.4, "heartbroken": -0.8,
    "stranded": -0.6, "ignored": -0.6, "ignoring": -0.6, "unanswered": -0.6,
    "unreachable": -0.5, "nobody": -0.3, "delayed": -0.4, "delay": -0.4, "delays": -0.4,
    "late": -0.3, "lost": -0.4, "missing": -0.4, "stuck": -0.5, "again": -0.05,
    # money and cancellation
    "overcharged": -0.7, "scam": -0.8, "scammed": -0.8, "rip-off": -0.8, "ripoff": -0.8,
    "fraud": -0.8, "stolen": -0.7, "refund": -0.2, "cancel": -0.3, "cancelled": -0.3,
    "canceled": -0.3, "cancelling": -0.3, "switching": -0.2, "complaint": -0.4,
    "complain": -0.4, "declined": -0.4, "rejected": -0.4, "worse": -0.6, "poorly": -0.5, "rude": -0.6, "unhelpful": -0.7,
    # general social-media negatives
    "hate": -0.8, "hated": -0.8, "hates": -0.8, "annoying": -0.6, "annoyed": -0.5,
    "angry": -0.6, "furious": -0.9, "fuming": -0.8, "upset": -0.5, "frustrating": -0.6,
    "frustrated": -0.6, "disappointing": -0.7, "disappointed": -0.7, "disappointment": -0.7,
    "fed": -0.2, "ugh": -0.5, "smh": -0.5, "wtf": -0.6, "damn": -0.3, "fucking": -0.4,
    "shit": -0.5, "shitty": -0.7, "bullshit": -0.7, "hell": -0.3, "sad": -0.5,
    "sadly": -0.5, "worried": -0.4, "scary": -0.5, "terrible": -0.9, "kill": -0.5,
    "killed": -0.5, "died": -0.5, "death": -0.5, "dies": -0.4, "war": -0.5, "attack": -0.4,
    "hurt": -0.5, "pain": -0.5, "miss": -0.2, "tired": -0.3, "sick": -0.5, "cry": -0.5,
    "crying": -0.5, "sucks!": -0.6, "boring": -0.5, "lame": -0.5, "fake": -0.4,
    "stupid": -0.7, "idiot": -0.7, "idiots": -0.7, "racist": -0.6, "liar": -0.7,
    "why": -0.15, "against": -0.2, "nothing": -0.2, "stop": -0.3, "blame": -0.5,
    "fault": -0.4, "lies": -0.6, "lie": -0.4, "lied": -0.6, "fight": -0.3, "violence": -0.6,
    "threat": -0.5, "protest": -0.3, "crisis": -0.5, "shame": -0.6, "ashamed": -0.6,
    "embarrassing": -0.6, "awkward": -0.3, "tragic": -0.7, "tragedy": -0.7, "rip": -0.3,
    "mourning": -0.5, "worry": -0.4, "afraid": -0.5, "fear": -0.5, "scared": -0.5,
    "hurts": -0.5, "fml": -0.6, "bored": -0.4, "disgusted": -0.8, "insult": -0.6,
    "offensive": -0.6, "terror": -0.6, "terrorist": -0.6, "terrorists": -0.6, "bomb": -0.5,
    "shooting": -0.5, "murder": -0.7, "racism": -0.6, "hatred": -0.7, "abuse": -0.7,
    "corrupt": -0.7, "corruption": -0.7, "greedy": -0.6, "lazy": -0.5, "selfish": -0.6,
    "cheat": -0.6, "cheated": -0.6, "cheating": -0.6, "losing": -0.4, "lose": -0.4,
    "loss": -0.4, "defeat": -0.4, "wasted": -0.5, "waste": -0.5, "expensive": -0.3,
    "overpriced": -0.6, "hacked": -0.6, "leak": -0.4, "strike": -0.3, "irritating": -0.6,
    "fraudulent": -0.7, "fraudulently": -0.7, "unauthorized": -0.5, "unauthorised": -0.5,
    "deactivated": -0.4, "suspended": -0.4, "locked": -0.3, "blocked": -0.4, "charged": -0.2,
    "hold": -0.15, "concerned": -0.4, "screw": -0.5, "asshole": -0.8, "pissed": -0.7,
    "misunderstanding": -0.3,
    # thanks and praise
    "thanks": 0.5, "thank": 0.5, "thx": 0.5, "thnx": 0.5, "ty": 0.3, "appreciate": 0.6,
    "appreciated": 0.6, "grateful": 0.7, "helpful": 0.6, "resolved": 0.4, "sorted": 0.3,
    "quickly": 0.3, "kudos": 0.7, "shoutout": 0.5, "congrats": 0.8,
    "congratulations": 0.8, "yay": 0.7, "woohoo": 0.7, "excited": 0.6, "exciting": 0.6,
    "love": 0.6, "loved": 0.6, "loving": 0.6, "loves": 0.6, "enjoy": 0.5, "enjoyed": 0.5,
    "fantastic": 0.8, "brilliant": 0.8, "excellent": 0.8, "superb": 0.8, "smooth": 0.3,
    "lovely": 0.7, "glad": 0.6, "happy": 0.7, "blessed": 0.6, "<cant_wait>": 0.6,
    "favorite": 0.5, "favourite": 0.5, "fun": 0.4, "haha": 0.3, "hahaha": 0.3, "lmao": 0.3,
    "win": 0.5, "won": 0.4, "proud": 0.7, "beautiful": 0.7, "hope": 0.2, "hopefully": 0.2,
    "luck": 0.3, "birthday": 0.3, "ready": 0.2, "welcome": 0.4,
    "wish": 0.3, "forward": 0.3, "peace": 0.5, "together": 0.3, "tribute": 0.4,
    "honored": 0.6, "honoured": 0.6, "thrilled": 0.8, "delighted": 0.8, "pleased": 0.6,
    "incredible": 0.6, "wonderful": 0.8, "cute": 0.6, "adorable": 0.7, "hilarious": 0.5,
    "legend": 0.5, "champion": 0.5, "champions": 0.5, "victory": 0.6, "celebrate": 0.6,
    "celebrating": 0.6, "celebration": 0.6, "party": 0.3, "smile": 0.5, "smiling": 0.5,
    "laugh": 0.4, "laughing": 0.4, "enjoying": 0.5, "thankful": 0.7, "wins": 0.5,
    "winning": 0.5, "recommend": 0.6, "recommended": 0.5, "impressed": 0.7,
    "impressive": 0.7, "friendly": 0.5, "polite": 0.5, "patient": 0.3, "reliable": 0.5,
}

FR_WORDS: dict[str, float] = {
    # panne et dysfonctionnement
    "panne": -0.6, "pannes": -0.6, "coupure": -0.5, "coupé": -0.4, "coupée": -0.4,
    "bug": -0.4, "bugs": -0.4, "bugue": -0.5, "beug": -0.5, "beugue": -0.5, "plante": -0.4,
    "plantage": -0.5, "erreur": -0.4, "erreurs": -0.4, "problème": -0.4, "problèmes": -0.4,
    "souci": -0.3, "soucis": -0.3, "hs": -0.5, "lenteur": -0.5, "lenteurs": -0.5,
    "dysfonctionnement": -0.5, "incident": -0.3, "inutilisable": -0.7, "défaillant": -0.5,
    "inadmissible": -0.8, "inacceptable": -0.8, "intolérable": -0.8, "honteux": -0.8,
    "honte": -0.7, "scandale": -0.7, "scandaleux": -0.8, "lamentable": -0.8,
    "catastrophique": -0.8, "catastrophe": -0.6, "galère": -0.5, "galere": -0.5,
    "n'importe": -0.4, "incompétent": -0.8, "incompétents": -0.8, "incompétence": -0.8,
    "nul": -0.6, "nulle": -0.6, "nuls": -0.6, "pourri": -0.7, "pourrie": -0.7, "naze": -0.6,
    "minable": -0.8, "déplorable": -0.8,
    # attente et contact
    "attente": -0.3, "injoignable": -0.6, "injoignables": -0.6, "relance": -0.3,
    "retard": -0.4, "retards": -0.4, "toujours": -0.05, "encore": -0.05, "bloqué": -0.5,
    "bloquée": -0.5, "perdu": -0.4, "perdue": -0.4, "silence": -0.3, "ignoré": -0.5,
    # argent et résiliation
    "arnaque": -0.8, "arnaques": -0.8, "arnaqué": -0.8, "escroquerie": -0.8, "escrocs": -0.8,
    "voleurs": -0.8, "vol": -0.4, "remboursement": -0.3, "rembourser": -0.2,
    "résilier": -0.4, "résiliation": -0.4, "prélevé": -0.3, "surfacturation": -0.7,
    "réclamation": -0.4, "plainte": -0.5, "refusé": -0.4, "refusée": -0.4, "refuse": -0.3,
    # négatif général
    "marre": -0.7, "ras-le-bol": -0.7, "colère": -0.6, "énervé": -0.6, "énervée": -0.6,
    "déçu": -0.7, "déçue": -0.7, "déçus": -0.7, "déception": -0.7, "décevant": -0.7,
    "déteste": -0.8, "pire": -0.7, "horrible": -0.9, "triste": -0.5, "tristesse": -0.5,
    "peur": -0.5, "inquiétude": -0.4, "danger": -0.5, "menace": -0.5, "menacé": -0.5,
    "crise": -0.4, "mort": -0.5, "morts": -0.5, "tué": -0.6, "tués": -0.6, "guerre": -0.5,
    "attentat": -0.7, "victime": -0.4, "victimes": -0.5, "dégâts": -0.5,
    "menacés": -0.5, "menacées": -0.5, "disparaître": -0.5, "morte": -0.5, "inutile": -0.5,
    "inutiles": -0.5, "mépris": -0.6, "dommage": -0.5, "gâchis": -0.6, "stop": -0.3,
    "destruction": -0.6, "pollution": -0.5, "pollue": -0.5, "polluant": -0.4,
    "polluer": -0.5, "réchauffement": -0.3, "disparition": -0.4, "détruit": -0.6,
    "détruire": -0.5, "malheureusement": -0.6, "hélas": -0.5, "merde": -0.7,
    "putain": -0.5, "chiant": -0.7, "ridicule": -0.7, "absurde": -0.6, "stupide": -0.7,
    "mensonge": -0.6, "menteur": -0.7, "mauvais": -0.7, "grave": -0.4, "grave!": -0.4,
    "risque": -0.3, "risques": -0.3, "problématique": -0.4, "dramatique": -0.7,
    "inquiétant": -0.6, "alarmant": -0.7, "urgence": -0.3, "fléau": -0.7, "échec": -0.6,
    "pourquoi": -0.15, "rejette": -0.4, "rejet": -0.4, "polémique": -0.4, "indifférence": -0.5,
    "révolte": -0.4, "tue": -0.6, "tuer": -0.6, "meurt": -0.6, "mourir": -0.5,
    "massacre": -0.8, "assassin": -0.8, "assassine": -0.8, "abattage": -0.5, "crime": -0.6,
    "condamné": -0.4, "condamne": -0.4, "accuse": -0.4, "accusé": -0.4, "dégoûté": -0.7,
    "dégoût": -0.7, "rien": -0.1, "tristement": -0.5, "pleure": -0.5, "pleurer": -0.5,
    "malade": -0.4, "douleur": -0.5, "souffrance": -0.6, "souffre": -0.5, "perte": -0.4,
    "pertes": -0.4, "perdre": -0.3, "échoue": -0.5, "suppression": -0.3,
    "suppressions": -0.4, "licenciement": -0.5, "licenciements": -0.5, "chômage": -0.4,
    "grève": -0.4, "annulé": -0.4, "annulée": -0.4, "annulation": -0.4, "supprimé": -0.3,
    "piraté": -0.6, "piratage": -0.6, "fuite": -0.3, "cher": -0.3, "abusé": -0.5,
    "abus": -0.5, "contre": -0.1, "polluants": -0.4, "magouilles": -0.7, "défigurent": -0.6,
    "défigure": -0.6, "pénalisée": -0.5, "pénalise": -0.5, "dénoncer": -0.4, "dénonce": -0.4,
    "suspension": -0.3, "refuser": -0.3, "refus": -0.4, "bornés": -0.5, "troll": -0.4,
    "violence": -0.6, "tempête": -0.4, "menacée": -0.5, "extinction": -0.5, "gueule": -0.4, "mensonges": -0.6, "menteurs": -0.7, "faute": -0.4,
    # remerciements et éloges
    "merci": 0.5, "mercii": 0.5, "remercie": 0.6, "remercier": 0.5, "bravo": 0.8,
    "félicitations": 0.8, "chapeau": 0.6, "top": 0.6, "génial": 0.9, "géniale": 0.9,
    "super": 0.7, "excellent": 0.8, "excellente": 0.8, "parfait": 0.8, "parfaite": 0.8,
    "efficace": 0.6, "rapide": 0.4, "rapidement": 0.3, "réactif": 0.7, "réactivité": 0.7,
    "résolu": 0.4, "réglé": 0.4, "adore": 0.7, "aime": 0.5, "j'adore": 0.8, "cool": 0.5,
    "sympa": 0.5, "content": 0.6, "contente": 0.6, "ravi": 0.8, "ravie": 0.8,
    "heureux": 0.7, "heureuse": 0.7, "bonheur": 0.7, "joie": 0.7, "plaisir": 0.5,
    "magnifique": 0.9, "beau": 0.6, "belle": 0.6, "mieux": 0.3, "bien": 0.3, "espoir": 0.5,
    "bonne": 0.6, "bon": 0.5, "mdr": 0.3, "lol": 0.3, "haha": 0.3, "hâte": 0.6,
    "solution": 0.3, "solutions": 0.3, "innovant": 0.5, "innovation": 0.4,
    "durable": 0.3, "protéger": 0.4, "protection": 0.3, "sauver": 0.4, "engagement": 0.3,
    "réussite": 0.7, "succès": 0.7, "gagné": 0.5, "génialissime": 0.9,
    "grâce": 0.3, "honneur": 0.5, "fête": 0.5, "agir": 0.2, "croissance": 0.3,
    "inauguration": 0.3, "bientôt": 0.2, "félicite": 0.7, "réussi": 0.6, "gagne": 0.4,
    "victoire": 0.7, "champion": 0.6, "fier": 0.7, "fière": 0.7, "impressionnant": 0.6,
    "incroyable": 0.5, "formidable": 0.8, "merveilleux": 0.8, "adorable": 0.7, "mignon": 0.6,
    "rire": 0.4, "sourire": 0.5, "soutien": 0.3, "recommande": 0.6, "gratuit": 0.3,
    "économies": 0.3, "avancée": 0.5, "progrès": 0.5, "propre": 0.3, "sain": 0.4,
    "bienvenue": 0.5, "partage": 0.2, "découvrez": 0.2, "nouvelle": 0.1,
}

# Fixed care phrases (lower-cased pattern tokens) scored as one token; TextBlob reads them wrong
# ("never again" comes out positive: "never" negates "again").
EN_PHRASES: dict[tuple[str, ...], float] = {
    ("thanks", "for", "nothing"): -0.7, ("thank", "you", "for", "nothing"): -0.7,
    ("never", "again"): -0.6, ("not", "again"): -0.5, ("waste", "of", "time"): -0.7,
    ("waste", "of", "money"): -0.7, ("rip", "off"): -0.8, ("fed", "up"): -0.7,
    ("sick", "of"): -0.6, ("sick", "and", "tired"): -0.8, ("no", "one", "cares"): -0.6,
    ("still", "waiting"): -0.5, ("on", "hold"): -0.4, ("let", "down"): -0.6,
    ("no", "solution"): -0.5, ("no", "solutions"): -0.5, ("not", "a", "solution"): -0.5,
}
FR_PHRASES: dict[tuple[str, ...], float] = {
    ("merci", "pour", "rien"): -0.7, ("pas", "terrible"): -0.4, ("ras", "le", "bol"): -0.7,
    ("importe", "quoi"): -0.5, ("foutage", "de", "gueule"): -0.8, ("perte", "de", "temps"): -0.6,
    ("vous", "moquez"): -0.6, ("se", "moque"): -0.5, ("jamais", "plus"): -0.5,
    ("toujours", "rien"): -0.5, ("toujours", "en", "attente"): -0.5, ("en", "attente"): -0.3,
    ("aucune", "solution"): -0.5, ("pas", "de", "solution"): -0.5, ("pas", "une", "solution"): -0.5,
    ("sans", "solution"): -0.5,
}

# Intensifiers that pattern's lexicons lack or weaken: (intensity) applied to the next known word.
EN_INTENSIFIERS: dict[str, float] = {"so": 1.3, "soo": 1.5}
FR_INTENSIFIERS: dict[str, float] = {"trop": 1.5, "tellement": 1.5, "hyper": 1.5}

# Words pattern scores that carry no sentiment in customer messages ("game" is -0.4 there).
EN_NEUTRAL = frozenset(
    ("game", "games", "mean", "black", "white", "vs", "other", "more", "many", "able",
     "last", "next", "full", "long", "high", "single", "open")
)
FR_NEUTRAL = frozenset(
    ("fait", "faire", "sous", "plus", "tout", "toute", "toutes", "tous", "si", "même", "certaines",
     "certains", "autre", "grand", "grands", "grande", "non", "passé", "passée", "passés", "passées")
)
