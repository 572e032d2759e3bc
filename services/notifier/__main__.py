from services.common.serve import serve
from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings

if __name__ == "__main__":
    serve("notifier", NotifierSettings(), create_app)
